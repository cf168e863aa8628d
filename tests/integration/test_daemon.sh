#!/bin/sh
# The daemon end to end: start on ephemeral ports, health over HTTP, CoAP
# answered, errors as JSON, reload on SIGHUP, clean exit on SIGTERM.
. "$(dirname "$0")/lib.sh"

command -v "$CURL" >/dev/null || bail "curl is required"
command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"

fotad_start
ok 0 "fotad listens (coap=$COAP_PORT http=$HTTP_PORT)"
[ "$COAP_PORT" -gt 0 ] && [ "$HTTP_PORT" -gt 0 ]
ok $? "port file names real ports"

out=$(http GET /api/v1/health)
status=$(echo "$out" | tail -n 1)
body=$(echo "$out" | sed '$d')
ok "$([ "$status" = 200 ]; echo $?)" "health answers 200"
echo "$body" | grep -q '"status":"ok"'
ok $? "health status is ok"
echo "$body" | grep -q '"database":{[^}]*"state":"ok"'
ok $? "health reports the database ok"
echo "$body" | grep -Eq '"schema_version":[1-9]'
ok $? "health reports the schema version"
echo "$body" | grep -q '"devices":0' && echo "$body" | grep -q '"rollouts":0'
ok $? "health counts devices and rollouts"
echo "$body" | grep -Eq '"version":"[0-9]+\.[0-9]+' &&
  echo "$body" | grep -Eq '"uptime_s":[0-9]+'
ok $? "health reports version and uptime"
diag "$body"

headers=$("$CURL" -sS -m 10 -D - -o /dev/null "$BASE/api/v1/health")
echo "$headers" | grep -qi '^content-type: application/json'
ok $? "health is served as application/json"

out=$(http GET /api/v1/nothing-here)
echo "$out" | tail -n 1 | grep -qx 404 &&
  echo "$out" | grep -q '"error":{"code":"not_found","message":"'
ok $? "unknown path: 404 with a JSON error body"

out=$(http DELETE /api/v1/health)
echo "$out" | tail -n 1 | grep -qx 405 &&
  echo "$out" | grep -q '"code":"method_not_allowed"'
ok $? "wrong method: 405 with a JSON error body"

head -c 2000000 /dev/zero >"$WORK/big"
out=$(http POST /api/v1/health --data-binary "@$WORK/big" \
  -H 'Content-Type: application/octet-stream')
echo "$out" | tail -n 1 | grep -qx 413 &&
  echo "$out" | grep -q '"code":"too_large"'
ok $? "oversized body: 413 with a JSON error body"

coap=$("$COAP_CLIENT" -B 5 -m get \
  "coap://127.0.0.1:$COAP_PORT/.well-known/core" 2>&1)
ok $? "coap-client GET /.well-known/core succeeds"
diag "coap: $coap"

# An unknown CoAP resource is answered, not dropped: coap-client prints
# the 4.04 response code.
coap=$("$COAP_CLIENT" -B 5 -m get "coap://127.0.0.1:$COAP_PORT/no/such" 2>&1)
echo "$coap" | grep -q '4\.04'
ok $? "CoAP GET of an unknown resource answers 4.04"

# SIGHUP with a valid config applies it; with a broken one keeps running.
FOTAD_LOG_LEVEL=info write_config
kill -HUP "$FOTAD_PID"
sleep 0.5
grep -q 'reload: log_level changed' "$FOTAD_LOG"
ok $? "SIGHUP reloads log_level"
echo "no_such_key 1" >>"$WORK/fotad.conf"
kill -HUP "$FOTAD_PID"
sleep 0.5
grep -q 'reload failed, keeping the running configuration: .*fotad.conf:[0-9]*: unknown key' "$FOTAD_LOG"
ok $? "SIGHUP with a bad file logs file:line and keeps running"
status=$(http GET /api/v1/health | tail -n 1)
ok "$([ "$status" = 200 ]; echo $?)" "still healthy after a failed reload"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit status 0 (was $FOTAD_STATUS)"
grep -q 'stopped' "$FOTAD_LOG"
ok $? "clean shutdown logged"
log_clean
ok $? "no sanitizer report in the log"

# The state survives a restart, and SIGINT stops as cleanly as SIGTERM.
write_config
fotad_start
status=$(http GET /api/v1/health | tail -n 1)
ok "$([ "$status" = 200 ]; echo $?)" "restart on the same state folder"
kill -INT "$FOTAD_PID"
wait "$FOTAD_PID"
ok $? "SIGINT: exit status 0"
FOTAD_PID=
log_clean
ok $? "no sanitizer report after restart"

done_testing
