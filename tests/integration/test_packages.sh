#!/bin/sh
# The package repository: uploads with curl -T (PUT, also chunked) and -F
# (multipart), content-addressed storage, duplicates (200) and conflicts
# (409), the size limit (413 by Content-Length and while streaming), bad
# parameters, listing and details, operator and device downloads (Range,
# 206/416, ETag, If-Range, If-None-Match, progress counters), MCUboot
# verification (unsigned, signed with a trusted key, tampered, signed with
# another key) and the force flag, deletion (409 while a rollout uses the
# package; the file goes with the last package sharing it), the audit
# rows, and the start-up sweep of leftovers.
. "$(dirname "$0")/lib.sh"

command -v "$REAL_CURL" >/dev/null || bail "curl is required"
command -v openssl >/dev/null || bail "openssl is required"
command -v sqlite3 >/dev/null || bail "the sqlite3 shell is required"
MKMCUBOOT="$top_builddir/tests/tools/mkmcuboot"
[ -x "$MKMCUBOOT" ] || bail "$MKMCUBOOT is not built (make check builds it)"

status() { echo "$1" | tail -n 1; }
body() { echo "$1" | sed '$d'; }
field() {
  echo "$1" | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" | head -n 1
}
numfield() {
  echo "$1" | sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" | head -n 1
}
# put COMPONENT VERSION FILE [curl args]: PUT upload; body, then status.
put() {
  c=$1
  v=$2
  f=$3
  shift 3
  "$CURL" -sS -m 30 -w '\n%{http_code}' -T "$f" "$@" \
    "$BASE/api/v1/packages?component=$c&version=$v"
}
# anon PATH [curl args]: GET without a token; body, then status.
anon() {
  p=$1
  shift
  "$REAL_CURL" -sS -m 10 -w '\n%{http_code}' "$@" "$BASE$p"
}

# Keys: a trusted one (its public half in the keys folder) and another.
mkdir -p "$WORK/keys" "$WORK/img"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/good.pem" \
  2>/dev/null &&
  openssl ec -in "$WORK/good.pem" -pubout -out "$WORK/keys/good.pub.pem" \
    2>/dev/null &&
  openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/other.pem" \
    2>/dev/null
ok $? "openssl made two P-256 keys"

write_config "package_max_size 1M" "mcuboot_keys_dir $WORK/keys"
fotad_start
ok 0 "fotad listens (http=$HTTP_PORT)"
grep -q "1 MCUboot signing key(s) trusted" "$FOTAD_LOG"
ok $? "the trusted key is loaded"
PKG="$WORK/state/packages"

head -c 300000 /dev/urandom >"$WORK/app-3.0.bin"
sha=$(sha256sum "$WORK/app-3.0.bin" | cut -d' ' -f1)

# ---- uploads ----
out=$(put application 3.0 "$WORK/app-3.0.bin" -D "$WORK/hdrs")
[ "$(status "$out")" = 201 ] &&
  [ "$(field "$out" sha256)" = "$sha" ] &&
  [ "$(numfield "$out" size)" = 300000 ] &&
  echo "$out" | grep -q '"mcuboot":null' &&
  echo "$out" | grep -q '"rollout_allowed":true'
ok $? "PUT upload (curl -T): 201, SHA-256 and size, not MCUboot"
id1=$(numfield "$out" id)
grep -qi "^Location: /api/v1/packages/$id1" "$WORK/hdrs"
ok $? "201 names the new package in Location"
token1=$(field "$out" download_path | sed 's|^/fw/||')
echo "$token1" | grep -Eq '^[0-9a-f]{32}$'
ok $? "a 32-hex-digit download token ($token1)"
cmp -s "$PKG/$sha" "$WORK/app-3.0.bin"
ok $? "stored content-addressed as state/packages/<sha256>"
[ -z "$(ls "$PKG/tmp")" ]
ok $? "no temporary file left"

out=$(put application 3.0 "$WORK/app-3.0.bin")
[ "$(status "$out")" = 200 ] && [ "$(numfield "$out" id)" = "$id1" ]
ok $? "the same upload again: 200 with the existing package"

head -c 1000 /dev/urandom >"$WORK/other.bin"
out=$(put application 3.0 "$WORK/other.bin")
[ "$(status "$out")" = 409 ] && echo "$out" | grep -q '"code":"conflict"'
ok $? "same component and version, other content: 409"

out=$(http POST /api/v1/packages -F component=modem -F version=2.1 \
  -F "file=@$WORK/app-3.0.bin")
[ "$(status "$out")" = 201 ] && [ "$(field "$out" sha256)" = "$sha" ] &&
  [ "$(field "$out" filename)" = app-3.0.bin ]
ok $? "multipart upload (curl -F): 201, file name kept"
id2=$(numfield "$out" id)
[ "$(ls "$PKG" | grep -c '^[0-9a-f]\{64\}$')" = 1 ]
ok $? "the same content under another name shares one file"

head -c 5000 /dev/urandom >"$WORK/boot.bin"
out=$(http POST "/api/v1/packages?component=bootloader&version=1.0" \
  -F "file=@$WORK/boot.bin")
[ "$(status "$out")" = 201 ]
ok $? "multipart upload with the fields in the query: 201"

# ---- limits and bad parameters ----
head -c 1100000 /dev/urandom >"$WORK/big.bin"
out=$(put big 1.0 "$WORK/big.bin")
[ "$(status "$out")" = 413 ] && echo "$out" | grep -q '"code":"too_large"' &&
  echo "$out" | grep -q 'package_max_size'
ok $? "oversized by Content-Length: 413 with a clear error"
out=$("$CURL" -sS -m 30 -w '\n%{http_code}' -T - \
  "$BASE/api/v1/packages?component=big&version=1.0" <"$WORK/big.bin")
[ "$(status "$out")" = 413 ] && echo "$out" | grep -q 'package_max_size'
ok $? "oversized while streaming (chunked, no Content-Length): 413"
out=$(http POST /api/v1/packages -F component=big -F version=1.0 \
  -F "file=@$WORK/big.bin")
[ "$(status "$out")" = 413 ]
ok $? "oversized multipart: 413"
[ -z "$(ls "$PKG/tmp")" ]
ok $? "refused uploads leave no temporary file"
out=$(http GET "/api/v1/packages?component=big")
echo "$out" | grep -q '"packages":\[\]'
ok $? "and no package"

out=$(http PUT "/api/v1/packages?version=1.0" -T "$WORK/boot.bin")
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"component"'
ok $? "component missing: 400 naming it"
out=$(http PUT "/api/v1/packages?component=app" -T "$WORK/boot.bin")
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"version"'
ok $? "version missing: 400 naming it"
out=$(http PUT "/api/v1/packages?component=a%2Fb&version=1" \
  -T "$WORK/boot.bin")
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"component"'
ok $? "a slash in the component: 400"
out=$(http PUT "/api/v1/packages?component=app&version=1%20beta" \
  -T "$WORK/boot.bin")
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"version"'
ok $? "a blank in the version: 400"
out=$(http PUT "/api/v1/packages?component=app&version=1&force=maybe" \
  -T "$WORK/boot.bin")
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"force"'
ok $? "force=maybe: 400"
: >"$WORK/empty.bin"
out=$(put app 0.1 "$WORK/empty.bin")
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q 'empty'
ok $? "an empty package: 400"
out=$(http POST /api/v1/packages -F component=app -F version=1)
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"file"'
ok $? "a form without a file: 400"
out=$(http POST /api/v1/packages -F component=app -F version=1 \
  -F colour=blue -F "file=@$WORK/boot.bin")
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"colour"'
ok $? "an unknown form field: 400 naming it"
out=$(http POST /api/v1/packages -H 'Content-Type: application/json' \
  -d '{"component":"app"}')
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q 'multipart'
ok $? "a JSON body on POST: 400 pointing to multipart"
[ -z "$(ls "$PKG/tmp")" ]
ok $? "still no temporary file left"

reader=$(http POST /api/v1/tokens -d '{"name":"reader","scope":"read"}')
rtok=$(field "$reader" token)
out=$("$REAL_CURL" -sS -m 10 -w '\n%{http_code}' -T "$WORK/boot.bin" \
  -H "Authorization: Bearer $rtok" \
  "$BASE/api/v1/packages?component=x&version=1")
[ "$(status "$out")" = 403 ]
ok $? "a read token cannot upload: 403"
out=$(anon "/api/v1/packages")
[ "$(status "$out")" = 401 ]
ok $? "listing needs a token"

# ---- list and show ----
out=$(http GET /api/v1/packages)
[ "$(status "$out")" = 200 ] &&
  [ "$(echo "$out" | grep -o '"id":' | wc -l)" = 3 ]
ok $? "list: three packages"
out=$(http GET "/api/v1/packages?component=modem")
[ "$(echo "$out" | grep -o '"id":' | wc -l)" = 1 ] &&
  echo "$out" | grep -q '"version":"2.1"'
ok $? "list filtered by component"
out=$(http GET "/api/v1/packages?limit=2")
next=$(field "$out" next_cursor)
out2=$(http GET "/api/v1/packages?limit=2&cursor=$next")
[ "$(echo "$out" | grep -o '"id":' | wc -l)" = 2 ] &&
  [ "$(echo "$out2" | grep -o '"id":' | wc -l)" = 1 ] &&
  echo "$out2" | grep -q '"next_cursor":null'
ok $? "pagination with next_cursor"
out=$(http GET "/api/v1/packages?component=no%20way")
[ "$(status "$out")" = 400 ]
ok $? "a bad component filter: 400"
out=$(http GET "/api/v1/packages/$id1")
[ "$(status "$out")" = 200 ] && [ "$(field "$out" sha256)" = "$sha" ] &&
  echo "$out" | grep -q '"downloads":{"started":0,"completed":0,"bytes_served":0}'
ok $? "show: metadata and download counters"
out=$(http GET /api/v1/packages/999)
[ "$(status "$out")" = 404 ]
ok $? "an unknown package: 404"

# ---- downloads ----
etag="\"$sha\""
anon "/fw/$token1" -D "$WORK/hdrs" -o "$WORK/dl.bin" >/dev/null
head -n 1 "$WORK/hdrs" | grep -q ' 200' && cmp -s "$WORK/dl.bin" "$WORK/app-3.0.bin" &&
  grep -qi "^ETag: $etag" "$WORK/hdrs" &&
  grep -qi '^Content-Length: 300000' "$WORK/hdrs" &&
  grep -qi '^Accept-Ranges: bytes' "$WORK/hdrs"
ok $? "device download without a token: 200, the same bytes, ETag = SHA-256"
anon "/fw/$token1" -D "$WORK/hdrs" -o "$WORK/part.bin" \
  -H 'Range: bytes=1000-1999' >/dev/null
head -c 2000 "$WORK/app-3.0.bin" | tail -c 1000 >"$WORK/want.bin"
head -n 1 "$WORK/hdrs" | grep -q ' 206' && cmp -s "$WORK/part.bin" "$WORK/want.bin" &&
  grep -qi '^Content-Range: bytes 1000-1999/300000' "$WORK/hdrs"
ok $? "Range: 206 with Content-Range and the right bytes"
anon "/fw/$token1" -D "$WORK/hdrs" -o "$WORK/part.bin" \
  -H 'Range: bytes=299000-' >/dev/null
tail -c 1000 "$WORK/app-3.0.bin" >"$WORK/want.bin"
head -n 1 "$WORK/hdrs" | grep -q ' 206' && cmp -s "$WORK/part.bin" "$WORK/want.bin"
ok $? "an open range to the end: 206"
anon "/fw/$token1" -D "$WORK/hdrs" -o "$WORK/part.bin" \
  -H 'Range: bytes=-500' >/dev/null
tail -c 500 "$WORK/app-3.0.bin" >"$WORK/want.bin"
head -n 1 "$WORK/hdrs" | grep -q ' 206' && cmp -s "$WORK/part.bin" "$WORK/want.bin"
ok $? "a suffix range: 206 with the last bytes"
out=$(anon "/fw/$token1" -D "$WORK/hdrs" -H 'Range: bytes=300000-')
[ "$(status "$out")" = 416 ] &&
  grep -qi '^Content-Range: bytes \*/300000' "$WORK/hdrs"
ok $? "a range past the end: 416 with Content-Range"
anon "/fw/$token1" -D "$WORK/hdrs" -o "$WORK/dl.bin" \
  -H 'Range: bytes=0-9,20-29' >/dev/null
head -n 1 "$WORK/hdrs" | grep -q ' 200' && cmp -s "$WORK/dl.bin" "$WORK/app-3.0.bin"
ok $? "several ranges: the whole file (200)"
anon "/fw/$token1" -D "$WORK/hdrs" -o "$WORK/part.bin" \
  -H 'Range: bytes=0-99' -H "If-Range: $etag" >/dev/null
head -n 1 "$WORK/hdrs" | grep -q ' 206'
ok $? "If-Range with the current ETag: the range (206)"
anon "/fw/$token1" -D "$WORK/hdrs" -o "$WORK/dl.bin" \
  -H 'Range: bytes=0-99' -H 'If-Range: "0123"' >/dev/null
head -n 1 "$WORK/hdrs" | grep -q ' 200' && cmp -s "$WORK/dl.bin" "$WORK/app-3.0.bin"
ok $? "If-Range with another ETag: the whole file (200)"
out=$(anon "/fw/$token1" -H "If-None-Match: $etag")
[ "$(status "$out")" = 304 ]
ok $? "If-None-Match with the ETag: 304"
out=$(anon "/fw/0123456789abcdef0123456789abcdef")
[ "$(status "$out")" = 404 ]
ok $? "an unknown download token: 404"
out=$(anon "/fw/nope")
[ "$(status "$out")" = 404 ]
ok $? "a malformed download token: 404"
hdr=$("$REAL_CURL" -sS -m 10 -I "$BASE/fw/$token1")
echo "$hdr" | head -n 1 | grep -q ' 200' &&
  echo "$hdr" | grep -qi '^Content-Length: 300000'
ok $? "HEAD: the headers alone"

# Counted: the whole file three times (a request from offset 0 after
# earlier progress starts a new download), three ranges and 100 bytes; not
# the 416, the 304 or the HEAD.
out=$(http GET "/api/v1/packages/$id1")
echo "$out" | grep -q '"downloads":{"started":4,"completed":3,"bytes_served":'"$((300000 * 3 + 1000 + 1000 + 500 + 100))"'}'
ok $? "download counters: starts, completions, bytes ($(echo "$out" | sed -n 's/.*"downloads":\([^}]*}\).*/\1/p'))"

http GET "/api/v1/packages/$id1/content" -D "$WORK/hdrs" -o "$WORK/dl.bin" >/dev/null
head -n 1 "$WORK/hdrs" | grep -q ' 200' && cmp -s "$WORK/dl.bin" "$WORK/app-3.0.bin" &&
  grep -qi '^Content-Disposition: attachment; filename="application-3.0.bin"' "$WORK/hdrs"
ok $? "operator download: 200, the same bytes, as an attachment"
http GET "/api/v1/packages/$id1/content" -D "$WORK/hdrs" -o "$WORK/part.bin" \
  -H 'Range: bytes=10-19' >/dev/null
head -c 20 "$WORK/app-3.0.bin" | tail -c 10 >"$WORK/want.bin"
head -n 1 "$WORK/hdrs" | grep -q ' 206' && cmp -s "$WORK/part.bin" "$WORK/want.bin"
ok $? "operator download with Range: 206"
out=$(anon "/api/v1/packages/$id1/content")
[ "$(status "$out")" = 401 ]
ok $? "operator download needs a token"
out=$(http GET "/api/v1/packages/$id1")
echo "$out" | grep -q '"downloads":{"started":4,"completed":3,'
ok $? "operator downloads are not counted as device downloads"

# ---- MCUboot ----
head -c 20000 /dev/urandom >"$WORK/img/body.bin"
"$MKMCUBOOT" -V 1.2.3+4 -H 512 "$WORK/img/body.bin" "$WORK/img/unsigned.bin" &&
  "$MKMCUBOOT" -V 2.0.0+7 -H 512 -p -k "$WORK/good.pem" "$WORK/img/body.bin" \
    "$WORK/img/signed.bin" &&
  "$MKMCUBOOT" -V 2.0.1+0 -k "$WORK/other.pem" "$WORK/img/body.bin" \
    "$WORK/img/otherkey.bin"
ok $? "mkmcuboot built an unsigned, a signed and a wrongly signed image"
cp "$WORK/img/signed.bin" "$WORK/img/tampered.bin"
# One byte of the body (which starts at 512) changed: to a value it does
# not have, whatever random byte was there.
b=$(od -An -tu1 -j 4096 -N 1 "$WORK/img/tampered.bin" | tr -d ' ')
# shellcheck disable=SC2059
printf "\\$(printf '%03o' $(((b + 1) % 256)))" |
  dd of="$WORK/img/tampered.bin" bs=1 seek=4096 conv=notrunc 2>/dev/null
! cmp -s "$WORK/img/signed.bin" "$WORK/img/tampered.bin"
ok $? "a tampered copy differs by a byte"

out=$(put app 1.2.3 "$WORK/img/unsigned.bin")
[ "$(status "$out")" = 201 ] &&
  echo "$out" | grep -q '"mcuboot":{"verdict":"unsigned"' &&
  echo "$out" | grep -q '"version":"1.2.3+4"' &&
  echo "$out" | grep -q '"rollout_allowed":true'
ok $? "an unsigned MCUboot image: unsigned, header version, may roll out"
out=$(put app 2.0.0 "$WORK/img/signed.bin")
[ "$(status "$out")" = 201 ] &&
  echo "$out" | grep -q '"mcuboot":{"verdict":"valid"' &&
  echo "$out" | grep -q 'good.pub.pem' &&
  echo "$out" | grep -q '"rollout_allowed":true'
ok $? "signed with the trusted key: valid"
out=$(put app 2.0.0-t "$WORK/img/tampered.bin")
[ "$(status "$out")" = 201 ] &&
  echo "$out" | grep -q '"mcuboot":{"verdict":"invalid","detail":"image hash mismatch' &&
  echo "$out" | grep -q '"rollout_allowed":false'
ok $? "a tampered image: invalid (hash mismatch), not allowed to roll out"
id_bad=$(numfield "$out" id)
out=$(put app 2.0.1 "$WORK/img/otherkey.bin")
[ "$(status "$out")" = 201 ] &&
  echo "$out" | grep -q '"verdict":"invalid","detail":"signed with a key that is not configured' &&
  echo "$out" | grep -q '"rollout_allowed":false'
ok $? "signed with another key: invalid"
out=$(http PUT "/api/v1/packages?component=app&version=2.0.2&force=true" \
  -T "$WORK/img/otherkey.bin")
[ "$(status "$out")" = 201 ] &&
  echo "$out" | grep -q '"verdict":"invalid"' &&
  echo "$out" | grep -q '"forced":true,"rollout_allowed":true'
ok $? "uploaded with force=true: invalid but allowed"

out=$(http PATCH "/api/v1/packages/$id_bad" -d '{"force":true}')
[ "$(status "$out")" = 200 ] &&
  echo "$out" | grep -q '"forced":true,"rollout_allowed":true'
ok $? "PATCH force: the tampered image may now roll out"
out=$(http PATCH "/api/v1/packages/$id_bad" -d '{"force":"yes"}')
[ "$(status "$out")" = 400 ]
ok $? "PATCH with a non-boolean force: 400"
out=$(http PATCH "/api/v1/packages/$id_bad" -d '{"force":false}')
echo "$out" | grep -q '"forced":false,"rollout_allowed":false'
ok $? "PATCH force false: blocked again"

# ---- deletion ----
db="$WORK/state/fotad.db"
sqlite3 -cmd '.timeout 5000' "$db" \
  "INSERT INTO rollouts(id, state, spec, created_at, updated_at)
     VALUES (77, 'running', '{}', 1, 1);
   INSERT INTO rollout_packages VALUES (77, $id2);"
ok $? "a rollout uses the modem package"
out=$(http DELETE "/api/v1/packages/$id2")
[ "$(status "$out")" = 409 ] && echo "$out" | grep -q 'rollout'
ok $? "deleting a package a rollout uses: 409"
out=$("$REAL_CURL" -sS -m 10 -w '\n%{http_code}' -X DELETE \
  -H "Authorization: Bearer $rtok" "$BASE/api/v1/packages/$id1")
[ "$(status "$out")" = 403 ]
ok $? "a read token cannot delete: 403"
out=$(http DELETE "/api/v1/packages/$id1")
[ "$(status "$out")" = 200 ] && [ -f "$PKG/$sha" ]
ok $? "deleted application 3.0; the file stays (the modem package has it)"
out=$(anon "/fw/$token1")
[ "$(status "$out")" = 404 ]
ok $? "its download token is gone"
sqlite3 -cmd '.timeout 5000' "$db" \
  "DELETE FROM rollout_packages WHERE rollout_id = 77;
   DELETE FROM rollouts WHERE id = 77;"
out=$(http DELETE "/api/v1/packages/$id2")
[ "$(status "$out")" = 200 ] && [ ! -e "$PKG/$sha" ]
ok $? "the rollout gone, the last package with the content goes with its file"
out=$(http DELETE "/api/v1/packages/$id2")
[ "$(status "$out")" = 404 ]
ok $? "deleting it again: 404"

out=$(http GET "/api/v1/audit?action=package.upload")
[ "$(echo "$out" | grep -o '"action":"package.upload"' | wc -l)" = 8 ] &&
  echo "$out" | grep -q '"token":{"id":1,"name":"bootstrap"}'
ok $? "uploads are audited with the token"
out=$(http GET "/api/v1/audit?action=package.delete")
[ "$(echo "$out" | grep -o '"action":"package.delete"' | wc -l)" = 2 ]
ok $? "deletions are audited"
out=$(http GET "/api/v1/audit?action=package.update")
[ "$(echo "$out" | grep -o '"action":"package.update"' | wc -l)" = 2 ]
ok $? "force changes are audited"

# ---- restart: packages stay, leftovers are swept ----
fotad_stop
ok "$FOTAD_STATUS" "fotad stops cleanly"
echo junk >"$PKG/tmp/upload-leftover"
echo junk >"$PKG/0000000000000000000000000000000000000000000000000000000000000000"
fotad_start
[ ! -e "$PKG/tmp/upload-leftover" ] &&
  [ ! -e "$PKG/0000000000000000000000000000000000000000000000000000000000000000" ]
ok $? "on start, an unfinished upload and an orphan file are deleted"
out=$(http GET "/api/v1/packages?component=app")
[ "$(echo "$out" | grep -o '"id":' | wc -l)" = 5 ]
ok $? "the packages are still there"
signed_sha=$(sha256sum "$WORK/img/signed.bin" | cut -d' ' -f1)
cmp -s "$PKG/$signed_sha" "$WORK/img/signed.bin"
ok $? "and so are their files"

fotad_stop
ok "$FOTAD_STATUS" "fotad exits 0"
log_clean
ok $? "no sanitizer report in the log"

done_testing
