#!/bin/sh
# The database: created in state_dir on first start, kept across restarts,
# and a database from a newer fotad is refused without being touched.
. "$(dirname "$0")/lib.sh"

fotad_start
fotad_stop
ok "$FOTAD_STATUS" "first start and stop"
[ -f "$WORK/state/fotad.db" ]
ok $? "the database is created in state_dir"
perm=$(stat -c %a "$WORK/state")
[ "$perm" = 700 ]
ok $? "state_dir is private (mode $perm)"

command -v sqlite3 >/dev/null || bail "the sqlite3 shell is required (apt-get install sqlite3)"
if true; then
  v=$(sqlite3 "$WORK/state/fotad.db" 'PRAGMA user_version')
  [ "$v" -ge 1 ]
  ok $? "schema migrated (user_version $v)"
  fk=$(sqlite3 "$WORK/state/fotad.db" 'PRAGMA journal_mode')
  [ "$fk" = wal ]
  ok $? "database in WAL mode ($fk)"

  sqlite3 "$WORK/state/fotad.db" "PRAGMA user_version = 9999"
  sum_before=$(sha256sum "$WORK/state/fotad.db" | cut -d' ' -f1)
  "$FOTAD" -f -c "$WORK/fotad.conf" >"$WORK/newer.out" 2>&1
  st=$?
  [ $st -ne 0 ] && grep -q "schema version 9999, newer than" "$WORK/newer.out"
  ok $? "a newer database is refused (exit $st): $(cat "$WORK/newer.out")"
  sum_after=$(sha256sum "$WORK/state/fotad.db" | cut -d' ' -f1)
  [ "$sum_before" = "$sum_after" ]
  ok $? "the refused database is left untouched"
else
  diag "sqlite3 shell not installed: schema checks done by test_db only"
fi

done_testing
