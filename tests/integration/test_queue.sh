#!/bin/sh
# Queue mode: a request to a sleeping device is persisted and answered 202
# with its id; it goes out when the device wakes; its fate is visible; a
# queued request can be cancelled; requests wait across a restart.
. "$(dirname "$0")/lib.sh"

[ -x "$FOTAD_SIM" ] || bail "fotad-sim not built"
write_config "queue_awake_window 2s"
fotad_start
# Lifetime 8 s: an Update (a wake-up) every 6 s; awake 1 s after each.
sim_start -n 1 -e 'q-%d' --lwm2m 1.1 -b UQ -l 8 --awake-time 1 -d 120
wait_for 20 device_online q-0
ok $? "queue-mode device registered"
d=$("$CURL" -sS -m 5 "$BASE/api/v1/devices/q-0")
echo "$d" | grep -q '"queue_mode":true'
ok $? "it is shown in queue mode"

# Wait until the awake window after registration has passed.
asleep() {
  "$CURL" -sS -m 5 "$BASE/api/v1/devices/q-0" | grep -q '"awake":false'
}
wait_for 10 asleep
ok $? "the device is asleep once the awake window passes"

out=$(op q-0 read '{"path":"/3/0/0"}')
[ "$(echo "$out" | tail -n 1)" = 202 ] && echo "$out" | grep -q '"status":"queued"'
ok $? "a read while asleep is queued: 202"
id=$(echo "$out" | sed -n 's/.*"request_id":\([0-9]*\).*/\1/p')
[ -n "$id" ]
ok $? "with the request id ($id)"
r=$("$CURL" -sS -m 5 "$BASE/api/v1/requests/$id")
echo "$r" | grep -q '"state":"queued"'
ok $? "the request is listed as queued"

out=$(op q-0 read '{"path":"/3/0/1","queue":false}')
[ "$(echo "$out" | tail -n 1)" = 409 ] && echo "$out" | grep -q device_asleep
ok $? "queue:false refuses instead (409 device_asleep)"

out=$(op q-0 read '{"path":"/1/0/1"}')
id2=$(echo "$out" | sed -n 's/.*"request_id":\([0-9]*\).*/\1/p')
out=$("$CURL" -sS -m 5 -X DELETE -w '\n%{http_code}' "$BASE/api/v1/requests/$id2")
[ "$(echo "$out" | tail -n 1)" = 200 ] && echo "$out" | grep -q '"state":"cancelled"'
ok $? "a queued request can be cancelled"

done_req() {
  "$CURL" -sS -m 5 "$BASE/api/v1/requests/$1" | grep -q '"state":"done"'
}
wait_for 20 done_req "$id"
ok $? "the queued read went out when the device woke (done)"
r=$("$CURL" -sS -m 5 "$BASE/api/v1/requests/$id")
echo "$r" | grep -q '"code":"2.05"' && echo "$r" | grep -q '"/3/0/0":"'
ok $? "its result holds the device's answer"
r=$("$CURL" -sS -m 5 "$BASE/api/v1/requests/$id2")
echo "$r" | grep -q '"state":"cancelled"'
ok $? "the cancelled request was not sent"
out=$("$CURL" -sS -m 5 -X DELETE -w '\n%{http_code}' "$BASE/api/v1/requests/$id")
[ "$(echo "$out" | tail -n 1)" = 409 ]
ok $? "a finished request cannot be cancelled (409)"
list=$("$CURL" -sS -m 5 "$BASE/api/v1/devices/q-0/requests")
echo "$list" | grep -q "\"id\":$id" && echo "$list" | grep -q "\"id\":$id2"
ok $? "the device's requests are listed"

# Queued requests survive a restart of fotad.
wait_for 10 asleep
out=$(op q-0 read '{"path":"/3/0/2"}')
id3=$(echo "$out" | sed -n 's/.*"request_id":\([0-9]*\).*/\1/p')
[ -n "$id3" ]
ok $? "another request queued ($id3)"
fotad_stop
ok "$FOTAD_STATUS" "fotad stopped with a request queued"
keep_coap_ports "queue_awake_window 2s"
fotad_start
wait_for 30 done_req "$id3"
ok $? "after the restart the queued request is sent at the next wake-up"

sim_stop
fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
