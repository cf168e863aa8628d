#!/bin/sh
# Device management through the REST API against simulated devices (1.1
# with SenML CBOR, 1.0 with TLV): read, discover, write, write-partial,
# write-attributes, execute, create, delete, observe, composite operations,
# Block1 writes, error mapping and time-outs.
. "$(dirname "$0")/lib.sh"

[ -x "$FOTAD_SIM" ] || bail "fotad-sim not built"
write_config "objects_dir $top_srcdir/tests/data/objects"
fotad_start
sim_start -n 1 -e 'dm11-%d' --lwm2m 1.1 -l 120 -c application=1.0,modem=2.1 \
  --send /3/0/9 --package-version 1.1 -d 120
SIM11=$SIM_PID
sim_start -n 1 -e 'dm10-%d' --lwm2m 1.0 -l 120 -c application=1.0 -d 120
SIM10=$SIM_PID
SIM_PID=$SIM11
wait_for 20 device_online dm11-0 && wait_for 20 device_online dm10-0
ok $? "both simulated devices registered"

body() { echo "$1" | sed '$d'; }
status() { echo "$1" | tail -n 1; }

for ep in dm11-0 dm10-0; do
  out=$(op $ep read '{"path":"/3/0"}')
  [ "$(status "$out")" = 200 ] && body "$out" | grep -q '"/3/0/0":"' &&
    body "$out" | grep -q '"code":"2.05"'
  ok $? "$ep: read /3/0 decodes the device object"
done
op dm11-0 read '{"path":"/3/0"}' | grep -q 'application/senml+cbor'
ok $? "the 1.1 device answers in SenML CBOR"
op dm10-0 read '{"path":"/3/0"}' | grep -q 'application/vnd.oma.lwm2m+tlv'
ok $? "the 1.0 device answers in TLV"

out=$(op dm11-0 read '{"path":"/3/0/0","format":"text"}')
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"content_format":"text/plain"'
ok $? "read of one resource as text/plain"
out=$(op dm11-0 read '{"path":"/33629"}')
body "$out" | grep -q '"/33629/1/14":"modem"' &&
  body "$out" | grep -q '"/33629/0/15":"1.0"'
ok $? "read of the whole 33629 object"

out=$(op dm11-0 discover '{"path":"/33629/0"}')
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"links":"' &&
  body "$out" | grep -q '</33629/0/15>'
ok $? "discover lists the instance's resources"

for ep in dm11-0 dm10-0; do
  out=$(op $ep write '{"path":"/1/0/1","value":777}')
  [ "$(status "$out")" = 200 ] && body "$out" | grep -q '"code":"2.04"'
  ok $? "$ep: write /1/0/1 answers 2.04"
  op $ep read '{"path":"/1/0/1"}' | grep -q '"/1/0/1":777'
  ok $? "$ep: the written lifetime reads back"
done

out=$(op dm11-0 write-partial '{"path":"/1/0","values":{"/1/0/2":5,"/1/0/3":600}}')
[ "$(status "$out")" = 200 ]
ok $? "write-partial on an instance"
out=$(op dm11-0 read '{"path":"/1/0"}')
body "$out" | grep -q '"/1/0/2":5' && body "$out" | grep -q '"/1/0/3":600' &&
  body "$out" | grep -q '"/1/0/1":777'
ok $? "write-partial changed only the given resources"

out=$(op dm11-0 write-attributes '{"path":"/3/0/9","attributes":{"pmin":1,"pmax":30}}')
[ "$(status "$out")" = 200 ]
ok $? "write-attributes pmin/pmax"
out=$(op dm11-0 discover '{"path":"/3/0/9"}')
body "$out" | grep -q 'pmin=1' && body "$out" | grep -q 'pmax=30'
ok $? "discover shows the attributes written"
out=$(op dm11-0 write-attributes '{"path":"/3/0/9","attributes":{"pmin":"x"}}')
[ "$(status "$out")" = 400 ] && body "$out" | grep -q 'attributes.pmin'
ok $? "a bad attribute is refused by the API with the field named"

out=$(op dm11-0 execute '{"path":"/33629/0/2"}')
[ "$(status "$out")" = 405 ] && body "$out" | grep -q '"coap_code":"4.05"'
ok $? "Update in Idle: the device's 4.05 is mapped to 405 and shown"
out=$(op dm11-0 execute '{"path":"/33629/0/2","args":"0=bad value"}')
[ "$(status "$out")" = 400 ] && body "$out" | grep -q 'args:'
ok $? "execute arguments are checked against the grammar"
out=$(op dm11-0 execute '{"path":"/1/0/8"}')
[ "$(status "$out")" = 200 ]
ok $? "execute Registration Update Trigger"

out=$(op dm11-0 create '{"path":"/33629","values":{"/33629/9/14":"x"}}')
[ "$(status "$out")" = 405 ]
ok $? "create on 33629 is refused by the device (4.05)"
out=$(op dm11-0 delete '{"path":"/33629/0"}')
[ "$(status "$out")" = 405 ]
ok $? "delete of a 33629 instance is refused by the device (4.05)"

out=$(op dm11-0 read '{"path":"/9999/0"}')
[ "$(status "$out")" = 404 ] && body "$out" | grep -q '"code":"device_error"' &&
  body "$out" | grep -q '"coap_code":"4.04"'
ok $? "read of an unknown object: device 4.04 shown as device_error"
out=$(op nosuchdev read '{"path":"/3/0"}')
[ "$(status "$out")" = 404 ] && body "$out" | grep -q '"unknown_device"'
ok $? "operation on an unknown device: 404 unknown_device"
out=$(op dm11-0 fly '{"path":"/3/0"}')
[ "$(status "$out")" = 404 ]
ok $? "an unknown operation is 404"
out=$(op dm11-0 read '{"path":"/3/x"}')
[ "$(status "$out")" = 400 ] && body "$out" | grep -q 'path:'
ok $? "a malformed path is 400"
out=$(op dm11-0 read '{"path":')
[ "$(status "$out")" = 400 ] && body "$out" | grep -q '"bad_json"'
ok $? "malformed JSON is 400 bad_json"

out=$(op dm11-0 observe '{"path":"/3/0/9"}')
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"/3/0/9"'
ok $? "observe answers with the current value"
out=$(op dm11-0 cancel-observe '{"path":"/3/0/9"}')
[ "$(status "$out")" = 200 ]
ok $? "cancel-observe with Observe=1"
out=$(op dm11-0 cancel-observe '{"path":"/3/0/9"}')
[ "$(status "$out")" = 404 ]
ok $? "cancelling an observation that does not exist is 404"

# Cancel by RST: the observation is forgotten, and the device's next
# notification is answered with RST (its value changes every second).
out=$(op dm11-0 write-attributes '{"path":"/3/0/13","attributes":{"pmin":0,"pmax":1}}')
out=$(op dm11-0 observe '{"path":"/3/0/13"}')
[ "$(status "$out")" = 200 ]
ok $? "observe /3/0/13"
out=$(op dm11-0 cancel-observe '{"path":"/3/0/13","rst":true}')
[ "$(status "$out")" = 200 ]
ok $? "cancel-observe by RST"
wait_for 10 grep -q 'answer with an unknown token dropped' "$FOTAD_LOG"
ok $? "the next notification was refused with RST"

out=$(op dm11-0 read-composite '{"paths":["/3/0/0","/33629/1/15","/1/0/1"]}')
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"/33629/1/15":"2.1"' &&
  body "$out" | grep -q '"/1/0/1":777'
ok $? "read-composite of three paths"
out=$(op dm11-0 observe-composite '{"paths":["/3/0/9","/33629/0/3"]}')
[ "$(status "$out")" = 200 ]
ok $? "observe-composite"
out=$(op dm11-0 cancel-observe-composite '{"paths":["/3/0/9","/33629/0/3"]}')
[ "$(status "$out")" = 200 ]
ok $? "cancel-observe-composite"
out=$(op dm11-0 write-composite '{"values":{"/1/0/2":7,"/1/0/3":700}}')
[ "$(status "$out")" = 200 ]
ok $? "write-composite"
op dm11-0 read '{"path":"/1/0"}' | grep -q '"/1/0/3":700'
ok $? "write-composite values read back"

# Push delivery: a 5000-byte package written to /33629/0/0 goes with Block1.
pkg=$(head -c 5000 /dev/zero | tr '\0' 'A' | base64 -w0)
out=$(op dm11-0 write "{\"path\":\"/33629/0/0\",\"value\":\"$pkg\",\"format\":\"opaque\"}")
[ "$(status "$out")" = 200 ]
ok $? "a 5000-byte Block1 write to /33629/0/0 completes"
wait_for 10 sh -c "'$REAL_CURL' -sS -H 'Authorization: Bearer $FOTAD_TOKEN' '$BASE/api/v1/devices/dm11-0/components' | grep -q '\"path\":\"/33629/0\"[^}]*\"state\":2'"
ok $? "the pushed package brought the component to Downloaded (notified)"
out=$(op dm11-0 write '{"path":"/33629/0/1","value":""}')
[ "$(status "$out")" = 200 ]
ok $? "an empty Package URI resets the component"

# Timeline and Send.
tl=$("$CURL" -sS -m 10 "$BASE/api/v1/devices/dm11-0/timeline")
echo "$tl" | grep -q '"type":"registered"' && echo "$tl" | grep -q '"type":"component"'
ok $? "the timeline holds the registration and component changes"
echo "$tl" | grep -q '"source":"notification"'
ok $? "component changes arrive by notification"
wait_for 10 sh -c "'$REAL_CURL' -sS -H 'Authorization: Bearer $FOTAD_TOKEN' '$BASE/api/v1/devices/dm11-0/sent' | grep -q '/3/0/9'"
ok $? "values pushed with Send are stored"

# Object definitions: built in, and loaded from objects_dir.
objs=$("$CURL" -sS -m 5 "$BASE/api/v1/objects")
echo "$objs" | grep -q '"id":33629' && echo "$objs" | grep -q '"id":3303'
ok $? "the object model lists built-in 33629 and 3303 loaded from objects_dir"
obj=$("$CURL" -sS -m 5 "$BASE/api/v1/objects/33629")
echo "$obj" | grep -q 'Current Version'
ok $? "one definition shows its resources"

# A device that stops answering: the request times out with 504.
kill -STOP "$SIM10"
out=$(op dm10-0 read '{"path":"/3/0","timeout":2}')
[ "$(status "$out")" = 504 ] && body "$out" | grep -q '"device_timeout"'
ok $? "a silent device gives 504 after the request's time-out"
kill -CONT "$SIM10"

sim_stop
SIM_PID=$SIM10
sim_stop
fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
