#!/bin/sh
# make lint: clang-format in dry-run mode, a grep for banned calls, and
# cppcheck, over every tracked C file (or every C file when not in git).
set -u
top=${1:-.}
cd "$top" || exit 1
: "${CLANG_FORMAT:=clang-format}"
: "${CPPCHECK:=cppcheck}"

files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || files=$(find common db server orchestrator api daemon \
  tests bench -name '*.[ch]' 2>/dev/null)
rc=0

if command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  "$CLANG_FORMAT" --dry-run --Werror $files || rc=1
else
  echo "lint: clang-format not found" >&2
  rc=1
fi

# curl's list of calls that invite overflows or hide parse errors.
banned='\<(sprintf|vsprintf|strcpy|strcat|strncat|strtok|atoi|atol|atoll|gets)[[:space:]]*\('
# shellcheck disable=SC2086
if grep -nE "$banned" $files; then
  echo "lint: banned calls above (use snprintf, memcpy, parse_int64...)" >&2
  rc=1
fi

if command -v "$CPPCHECK" >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  "$CPPCHECK" --quiet --error-exitcode=1 --inline-suppr \
    --enable=warning,portability,performance --std=c11 \
    --suppress=missingIncludeSystem -I. $files || rc=1
else
  echo "lint: cppcheck not found" >&2
  rc=1
fi

[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
