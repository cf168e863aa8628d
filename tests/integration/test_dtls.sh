#!/bin/sh
# DTLS with pre-shared keys on the CoAPS listener: credentials managed over
# the REST API, a good key registers, a wrong key or unknown identity fails
# the handshake, and an identity may only register its own endpoint.
. "$(dirname "$0")/lib.sh"

command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"
fotad_start
[ -n "$COAPS_PORT" ]
ok $? "the port file names the CoAPS port ($COAPS_PORT)"

hex() {
  printf '%s' "$1" | od -An -tx1 | tr -d ' \n'
}

post() {
  "$CURL" -sS -m 10 -w '\n%{http_code}' -X POST \
    -H 'Content-Type: application/json' -d "$2" "$BASE$1"
}

out=$(post /api/v1/credentials \
  "{\"endpoint\":\"dev-psk\",\"type\":\"psk\",\"identity\":\"id-psk\",\"key\":\"$(hex secret-key-1)\"}")
echo "$out" | tail -n 1 | grep -qx 201
ok $? "a PSK credential is created (201)"
echo "$out" | grep -q '"key"'
[ $? -ne 0 ]
ok $? "a key given by the caller is not echoed back"

out=$(post /api/v1/credentials '{"endpoint":"dev-gen","type":"psk"}')
echo "$out" | tail -n 1 | grep -qx 201 &&
  echo "$out" | grep -Eq '"key":"[0-9a-f]{32}"'
ok $? "a generated key is shown once on creation"
genkey=$(echo "$out" | sed -n 's/.*"key":"\([0-9a-f]*\)".*/\1/p')

out=$(post /api/v1/credentials \
  "{\"endpoint\":\"dev-psk\",\"type\":\"psk\",\"key\":\"$(hex another-key)\"}")
echo "$out" | tail -n 1 | grep -qx 409
ok $? "a second credential for one endpoint is a conflict (409)"
out=$(post /api/v1/credentials '{"endpoint":"x","type":"psk","key":"zz"}')
echo "$out" | tail -n 1 | grep -qx 400 && echo "$out" | grep -q 'key:'
ok $? "a key that is not hex is refused with a reason"
out=$(post /api/v1/credentials '{"endpoint":"x","type":"magic"}')
echo "$out" | tail -n 1 | grep -qx 400
ok $? "an unknown credential type is refused"

list=$("$CURL" -sS -m 10 "$BASE/api/v1/credentials")
echo "$list" | grep -q '"endpoint":"dev-psk"' && ! echo "$list" | grep -q '"key"' &&
  ! echo "$list" | grep -q "$genkey"
ok $? "credentials are listed without their keys"
one=$("$CURL" -sS -m 10 "$BASE/api/v1/credentials/dev-gen")
echo "$one" | grep -q '"identity":"dev-gen"' && ! echo "$one" | grep -q "$genkey"
ok $? "one credential is shown without its key"

coaps() {
  "$COAP_CLIENT" -v 6 -B 5 "$@" 2>&1
}
reg_url() {
  echo "coaps://127.0.0.1:$COAPS_PORT/rd?ep=$1&lt=300&lwm2m=1.1"
}

out=$(coaps -u id-psk -k secret-key-1 -m post -t 40 -e '</1/0>,</3/0>' \
  "$(reg_url dev-psk)")
echo "$out" | grep -q 'c:2.01'
ok $? "Register over DTLS with the right key: 2.01"
d=$("$CURL" -sS -m 10 "$BASE/api/v1/devices/dev-psk")
echo "$d" | grep -q '"security":"psk"' && echo "$d" | grep -q '"online":true'
ok $? "the device is online with security psk"

out=$(coaps -u id-psk -k wrong-key-xx -m post -t 40 -e '</1/0>' \
  "$(reg_url dev-psk)")
! echo "$out" | grep -q 'c:2.01'
ok $? "a wrong key fails the handshake"
out=$(coaps -u nobody -k secret-key-1 -m post -t 40 -e '</1/0>' \
  "$(reg_url dev-psk)")
! echo "$out" | grep -q 'c:2.01'
ok $? "an unknown identity fails the handshake"
grep -q "PSK identity 'nobody' is unknown" "$FOTAD_LOG"
ok $? "the unknown identity is logged"

out=$(coaps -u id-psk -k secret-key-1 -m post -t 40 -e '</1/0>' \
  "$(reg_url dev-other)")
echo "$out" | grep -q 'c:4.03'
ok $? "an identity registering another endpoint gets 4.03"
grep -q "dev-other: refused: psk identity 'id-psk' may not register" "$FOTAD_LOG"
ok $? "the refusal is logged"

out=$("$COAP_CLIENT" -v 6 -B 5 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=dev-nosec&lwm2m=1.1" 2>&1)
echo "$out" | grep -q 'c:2.01'
ok $? "NoSec is allowed by default"

out=$("$CURL" -sS -m 10 -X DELETE -w '\n%{http_code}' \
  "$BASE/api/v1/credentials/dev-psk")
echo "$out" | tail -n 1 | grep -qx 200
ok $? "a credential is deleted"
out=$(coaps -u id-psk -k secret-key-1 -m post -t 40 -e '</1/0>' \
  "$(reg_url dev-psk)")
! echo "$out" | grep -q 'c:2.01'
ok $? "after deletion the identity is refused"
out=$("$CURL" -sS -m 10 -X DELETE -w '\n%{http_code}' \
  "$BASE/api/v1/credentials/dev-psk")
echo "$out" | tail -n 1 | grep -qx 404
ok $? "deleting it again is 404"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"

# With NoSec refused, a plain registration is forbidden.
write_config "coap_allow_nosec no"
fotad_start
out=$("$COAP_CLIENT" -v 6 -B 5 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=dev-nosec2&lwm2m=1.1" 2>&1)
echo "$out" | grep -q 'c:4.03'
ok $? "with coap_allow_nosec no, a NoSec Register gets 4.03"
fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
