#!/bin/sh
# The registration interface with raw CoAP from coap-client: Register,
# Update, De-register, refusals of malformed registrations, expiry,
# re-registration, and persistence across a restart.
. "$(dirname "$0")/lib.sh"

command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"

fotad_start

# coap REQUEST-ARGS...: runs coap-client, output (with the PDU dump that
# shows the response code and options) on stdout.
coap() {
  "$COAP_CLIENT" -v 6 -B 5 "$@" 2>&1
}

# register EP [QUERY] [PAYLOAD]: prints the location id on success.
register() {
  out=$(coap -m post -t 40 -e "${3:-</1/0>,</3/0>,</33629/0>,</33629/1>}" \
    "coap://127.0.0.1:$COAP_PORT/rd?ep=$1&${2:-lt=300&lwm2m=1.1&b=U}")
  echo "$out" | grep -q 'c:2.01' || { echo "$out" >&2; return 1; }
  echo "$out" | sed -n 's/.*Location-Path:rd, Location-Path:\([a-z2-7]*\).*/\1/p' | head -n 1
}

device() {
  "$CURL" -sS -m 10 "$BASE/api/v1/devices/$1"
}

loc=$(register dev-1)
[ -n "$loc" ]
ok $? "Register answers 2.01 with Location-Path rd/<id> ($loc)"

d=$(device dev-1)
echo "$d" | grep -q '"online":true' && echo "$d" | grep -q "\"location\":\"$loc\""
ok $? "the device is listed online with its location"
echo "$d" | grep -q '"path":"/33629/1"' && echo "$d" | grep -q '"path":"/3/0"'
ok $? "its object instances are stored"
echo "$d" | grep -q '"lifetime":300' && echo "$d" | grep -q '"binding":"U"' &&
  echo "$d" | grep -q '"lwm2m_version":"1.1"'
ok $? "lifetime, binding and version are stored"
echo "$d" | grep -q '"content_format":"application/senml+cbor"'
ok $? "a 1.1 device without ct gets SenML CBOR"
ev=$("$CURL" -sS -m 10 "$BASE/api/v1/devices/dev-1/timeline" |
  jq -c '[.events[] | select(.type == "registered")][0].data')
want="{\"location\":\"$loc\",\"lwm2m\":\"1.1\",\"lifetime\":300,\"binding\":\"U\",\"peer\":\"127.0.0.1:"
case "$ev" in
"$want"[0-9]*'"}') ok 0 "the timeline records the registration: $ev" ;;
*) ok 1 "the timeline records the registration: got $ev, want $want<port>\"}" ;;
esac

out=$(coap -m post "coap://127.0.0.1:$COAP_PORT/rd/$loc?lt=600")
echo "$out" | grep -q 'c:2.04'
ok $? "Update answers 2.04"
device dev-1 | grep -q '"lifetime":600'
ok $? "Update changes the lifetime"

out=$(coap -m post -t 40 -e '</1/0>,</3/0>,</5/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd/$loc")
echo "$out" | grep -q 'c:2.04' && device dev-1 | grep -q '"path":"/5/0"' &&
  ! device dev-1 | grep -q '"path":"/33629/0"'
ok $? "Update with a payload replaces the object list"

out=$(coap -m post "coap://127.0.0.1:$COAP_PORT/rd/nosuchloc")
echo "$out" | grep -q 'c:4.04'
ok $? "Update of an unknown registration answers 4.04"

out=$(coap -m post "coap://127.0.0.1:$COAP_PORT/rd/$loc?ep=other")
echo "$out" | grep -q 'c:4.00'
ok $? "Update with ep answers 4.00"

# Malformed registrations are refused with a reason.
expect_code() {
  desc=$1
  code=$2
  shift 2
  out=$(coap "$@")
  echo "$out" | grep -q "c:$code"
  ok $? "$desc: $code"
}
expect_code "Register without ep" 4.00 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?lt=60&lwm2m=1.1"
expect_code "Register with an unsupported version" 4.12 -m post -t 40 \
  -e '</1/0>' "coap://127.0.0.1:$COAP_PORT/rd?ep=x1&lwm2m=9.9"
expect_code "Register with a bad lifetime" 4.00 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=x2&lt=-5&lwm2m=1.1"
expect_code "Register with a lifetime of 1e3" 4.00 -m post -t 40 \
  -e '</1/0>' "coap://127.0.0.1:$COAP_PORT/rd?ep=x2&lt=1e3&lwm2m=1.1"
expect_code "Register with a bad binding" 4.00 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=x3&b=UX&lwm2m=1.1"
expect_code "Register with Q in 1.0" 4.00 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=x4&Q&lwm2m=1.0"
expect_code "Register with bad link format" 4.00 -m post -t 40 \
  -e '</1/0>,<3/0' "coap://127.0.0.1:$COAP_PORT/rd?ep=x5&lwm2m=1.1"
expect_code "Register with a link that is not an object" 4.00 -m post -t 40 \
  -e '</1/0/1/2/3>' "coap://127.0.0.1:$COAP_PORT/rd?ep=x6&lwm2m=1.1"
expect_code "Register with ep given twice" 4.00 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=a&ep=b&lwm2m=1.1"
expect_code "GET on /rd" 4.05 -m get "coap://127.0.0.1:$COAP_PORT/rd"
head -c 70000 /dev/zero | tr '\0' 'a' >"$WORK/huge"
expect_code "Register with a 70 kB payload" 4.13 -m post -t 40 \
  -f "$WORK/huge" "coap://127.0.0.1:$COAP_PORT/rd?ep=x7&lwm2m=1.1"
for ep in x1 x2 x3 x4 x5 x6 x7 a; do
  device $ep | grep -q '"code":"unknown_device"' || break
done
ok $? "no refused registration left a device behind"
status=$("$CURL" -sS -m 10 -o /dev/null -w '%{http_code}' "$BASE/api/v1/health")
[ "$status" = 200 ]
ok $? "fotad is healthy after the malformed registrations"

# The alternate path and content formats of the root link.
loc2=$(register dev-alt "lt=300&lwm2m=1.0&b=UQ" \
  '</lwm2m>;rt="oma.lwm2m";ct="60 110 11542",</lwm2m/1/0>,</lwm2m/3/0>')
d=$(device dev-alt)
echo "$d" | grep -q '"alt_path":"/lwm2m"' && echo "$d" | grep -q '"path":"/3/0"'
ok $? "alternate path recorded and stripped from object links"
echo "$d" | grep -q '"content_format":"application/senml+json"'
ok $? "the device's advertised ct list chooses the format"
echo "$d" | grep -q '"queue_mode":true'
ok $? "b=UQ is queue mode for 1.0"

# Re-registering replaces the old registration.
loc3=$(register dev-1)
[ -n "$loc3" ] && [ "$loc3" != "$loc" ]
ok $? "re-Register gets a new location"
out=$(coap -m post "coap://127.0.0.1:$COAP_PORT/rd/$loc")
echo "$out" | grep -q 'c:4.04'
ok $? "the replaced location is gone (4.04)"

# De-register.
out=$(coap -m delete "coap://127.0.0.1:$COAP_PORT/rd/$loc3")
echo "$out" | grep -q 'c:2.02'
ok $? "De-register answers 2.02"
device dev-1 | grep -q '"online":false'
ok $? "a deregistered device is listed offline"
out=$(coap -m delete "coap://127.0.0.1:$COAP_PORT/rd/$loc3")
echo "$out" | grep -q 'c:4.04'
ok $? "De-register of an unknown registration answers 4.04"

# Expiry: a 2 s lifetime ends without an Update.
register dev-short "lt=2&lwm2m=1.1" >/dev/null
device dev-short | grep -q '"online":true'
ok $? "short-lived registration is online"
i=0
while [ $i -lt 50 ] && ! device dev-short | grep -q '"online":false'; do
  sleep 0.1
  i=$((i + 1))
done
device dev-short | grep -q '"online":false'
ok $? "it expires after its lifetime"
grep -q 'dev-short: expired' "$FOTAD_LOG"
ok $? "the expiry is logged"

# Listing and filters.
register dev-2 >/dev/null
list=$("$CURL" -sS -m 10 "$BASE/api/v1/devices?prefix=dev-&online=true")
echo "$list" | grep -q '"endpoint":"dev-2"' &&
  ! echo "$list" | grep -q '"endpoint":"dev-1"'
ok $? "devices filtered by prefix and online state"
list=$("$CURL" -sS -m 10 "$BASE/api/v1/devices?limit=1")
echo "$list" | grep -q '"next_cursor":"'
ok $? "listing is paginated with a cursor"
cur=$(echo "$list" | sed -n 's/.*"next_cursor":"\([^"]*\)".*/\1/p')
list2=$("$CURL" -sS -m 10 "$BASE/api/v1/devices?limit=1&cursor=$cur")
[ "$list" != "$list2" ] && echo "$list2" | grep -q '"endpoint"'
ok $? "the cursor gives the next page"
list=$("$CURL" -sS -m 10 "$BASE/api/v1/devices?object=33629")
echo "$list" | grep -q '"endpoint":"dev-2"' &&
  ! echo "$list" | grep -q '"endpoint":"dev-alt"'
ok $? "devices filtered by object"
out=$("$CURL" -sS -m 10 "$BASE/api/v1/devices?online=maybe")
echo "$out" | grep -q '"code":"bad_request"'
ok $? "a bad filter is a 400 with a reason"

# Persistence: after a restart the device's next Update succeeds.
loc4=$(register dev-3)
fotad_stop
ok "$FOTAD_STATUS" "stopped with registrations live"
fotad_start
out=$(coap -m post "coap://127.0.0.1:$COAP_PORT/rd/$loc4")
echo "$out" | grep -q 'c:2.04'
ok $? "after a restart, Update of a stored registration answers 2.04"
device dev-3 | grep -q '"path":"/33629/1"'
ok $? "its objects are still listed"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
