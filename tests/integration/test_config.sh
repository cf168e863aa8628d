#!/bin/sh
# --check-config: the example config is valid; bad files are refused with
# file:line and a reason; the daemon refuses to start on them too.
. "$(dirname "$0")/lib.sh"

out=$("$FOTAD" --check-config -c "$top_srcdir/etc/fotad.conf" 2>&1)
ok $? "the example etc/fotad.conf passes --check-config"
diag "$out"

# bad_config NAME LINE PATTERN CONTENT: the file must fail with
# NAME:LINE: and a message matching PATTERN.
bad_config() {
  f="$WORK/$1"
  printf '%s\n' "$4" >"$f"
  out=$("$FOTAD" --check-config -c "$f" 2>&1)
  st=$?
  [ $st -ne 0 ] && echo "$out" | grep -q "$f:$2: .*$3"
  ok $? "$1: exit $st, message: $out"
}

bad_config unknown.conf 3 "unknown key 'coap_lsten'" \
  "# comment
state_dir /tmp/x
coap_lsten 127.0.0.1:5683"
bad_config number.conf 1 "not a whole number" "http_max_connections 12abc"
bad_config range.conf 2 "from 1 to 65536" "
http_max_connections 0"
bad_config duration.conf 1 "not a duration" "http_connection_timeout 5 minutes"
bad_config size.conf 1 "not a size" "http_max_body 1T"
bad_config twice.conf 2 "set twice" "log_level info
log_level debug"
bad_config enum.conf 1 "not one of err, warn, notice, info, debug" \
  "log_level loud"
bad_config novalue.conf 1 "missing value" "state_dir"

printf 'coap_listen localhost:5683\n' >"$WORK/addr.conf"
out=$("$FOTAD" --check-config -c "$WORK/addr.conf" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "coap_listen: 'localhost:5683'"
ok $? "a non-numeric listen address is refused: $out"

out=$("$FOTAD" --check-config -c "$WORK/missing.conf" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "missing.conf: No such file"
ok $? "a missing config file is refused: $out"

# The daemon itself refuses a bad file before touching anything.
"$FOTAD" -f -c "$WORK/unknown.conf" >"$WORK/start.out" 2>&1
st=$?
[ $st -eq 1 ] && grep -q "unknown.conf:3:" "$WORK/start.out"
ok $? "fotad -f exits 1 on a bad config"
[ ! -e /tmp/x ] || [ -d /tmp/x ]
ok $? "no state folder was created for a refused config"

"$FOTAD" --no-such-option >/dev/null 2>&1
[ $? -eq 2 ]
ok $? "an unknown option exits 2"
"$FOTAD" --help | grep -q -- '--portfile'
ok $? "--help documents --portfile"

done_testing
