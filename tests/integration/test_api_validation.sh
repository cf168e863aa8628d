#!/bin/sh
# API conventions: every POST route refuses malformed JSON, bodies that are
# not objects, members of the wrong type and unknown members, with a 400
# that names the field and what was expected; body size limit; every list
# paginated with next_cursor; ISO 8601 times; the OpenAPI document served
# as kept in the tree.
. "$(dirname "$0")/lib.sh"

command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"

write_config "http_max_body 4k"
fotad_start

# A device to address: validation happens before anything is sent to it.
"$COAP_CLIENT" -B 5 -m post -t 40 -e '</1/0>,</3/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=val-1&lwm2m=1.1&lt=300" >/dev/null 2>&1
"$CURL" -sS -m 10 "$BASE/api/v1/devices/val-1" | grep -q '"online":true'
ok $? "a device is registered to address"

post() {
  "$CURL" -sS -m 10 -w '\n%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data-binary "$2" "$BASE$1"
}
# expect400 ROUTE BODY FIELD WHAT: 400, naming FIELD (or none when "-"),
# with WHAT in the message.
expect400() {
  out=$(post "$1" "$2")
  st=$(echo "$out" | tail -n 1)
  okay=0
  [ "$st" = 400 ] || okay=1
  if [ "$3" != - ]; then
    echo "$out" | grep -q "\"field\":\"$3\"" || okay=1
  fi
  echo "$out" | grep -q "$4" || okay=1
  ok $okay "POST $1 $2: 400 $3 ($(echo "$out" | head -n 1))"
}

# Every operation of the OpenAPI document that takes a JSON body (the
# document is kept pretty-printed: paths at 4 spaces, methods at 6), with
# its path parameters filled in; each validates its body before it looks
# for the resource, so no fixture is needed.
awk '
  /^    "\/[^"]*": \{/ { split($0, a, "\""); path = a[2] }
  /^      "(get|put|post|patch|delete)": \{/ {
    split($0, a, "\""); method = toupper(a[2]); rb = 0
  }
  /^        "requestBody": / { rb = 1 }
  /^        "responses": / { rb = 0 }
  rb && /"application\/json"/ { print method, path; rb = 0 }
' "$top_srcdir/api/openapi.json" |
  sed -e 's/{ep}/val-1/; s/{op}/read/; s/{id}/1/' >"$WORK/json-routes"
grep -qx 'POST /api/v1/credentials' "$WORK/json-routes" &&
  grep -qx 'POST /api/v1/tokens' "$WORK/json-routes" &&
  grep -qx 'POST /api/v1/devices/val-1/read' "$WORK/json-routes"
ok $? "the document's JSON routes: $(tr '\n' ',' <"$WORK/json-routes")"

# send METHOD ROUTE BODY: like post, any method.
send() {
  "$CURL" -sS -m 10 -w '\n%{http_code}' -X "$1" \
    -H 'Content-Type: application/json' --data-binary "$3" "$BASE$2"
}
# generic METHOD ROUTE BODY FIELD WHAT: 400 naming FIELD ("-": none).
generic() {
  out=$(send "$1" "$2" "$3")
  okay=0
  [ "$(echo "$out" | tail -n 1)" = 400 ] || okay=1
  if [ "$4" != - ]; then
    echo "$out" | grep -q "\"field\":\"$4\"" || okay=1
  fi
  echo "$out" | grep -q "$5" || okay=1
  ok $okay "$1 $2 $3: 400 $4 ($(echo "$out" | head -n 1))"
}
while read -r m r; do
  generic "$m" "$r" '{"path":' - 'malformed JSON at line 1'
  generic "$m" "$r" '[1, 2]' - 'must be a JSON object'
  generic "$m" "$r" '"text"' - 'must be a JSON object'
  generic "$m" "$r" '{"a":1,"a":2}' - 'duplicate'
  generic "$m" "$r" '{"surprise":true}' surprise 'unknown field'
done <"$WORK/json-routes"

# Wrong types, one member at a time.
C=/api/v1/credentials
expect400 $C '{"endpoint":5,"type":"psk"}' endpoint 'expected a string'
expect400 $C '{"endpoint":"e","type":["psk"]}' type 'expected a string'
expect400 $C '{"endpoint":"e","type":"psk","key":12}' key 'expected a string'
expect400 $C '{"endpoint":"e","type":"psk","key":"zz"}' key 'in hex'
expect400 $C '{"endpoint":"e","type":"rpk","public_key":null}' public_key 'expected a string'
expect400 $C '{"endpoint":"e","type":"x509"}' identity 'CN is required'
expect400 $C '{"type":"psk"}' endpoint 'required'
expect400 $C '{"endpoint":"","type":"psk"}' endpoint '1 to 255'
expect400 $C '{"endpoint":"e","type":"magic"}' type 'psk, rpk or x509'
T=/api/v1/tokens
expect400 $T '{"name":7,"scope":"read"}' name 'printable characters'
expect400 $T '{"name":"","scope":"read"}' name 'printable characters'
expect400 $T '{"name":"a","scope":3}' scope 'read, operator or admin'
expect400 $T '{"scope":"read"}' name 'required'
expect400 $T '{"name":"a"}' scope 'required'
D=/api/v1/devices/val-1
expect400 $D/read '{"path":3}' path 'expected a string'
expect400 $D/read '{"path":"/a/b"}' path 'not an LwM2M path'
expect400 $D/read '{"path":"/3/0","timeout":"5"}' timeout 'whole seconds'
expect400 $D/read '{"path":"/3/0","timeout":0}' timeout 'whole seconds'
expect400 $D/read '{"path":"/3/0","queue":"yes"}' queue 'true or false'
expect400 $D/read '{"path":"/3/0","format":"xml"}' format 'senml-cbor'
expect400 $D/read '{}' path 'required'
expect400 $D/write '{"path":"/1/0/1"}' values 'required'
expect400 $D/write '{"path":"/1/0/1","value":"soon"}' values ''
expect400 $D/execute '{"path":"/3/0/4","args":5}' args 'expected a string'
expect400 $D/execute '{"path":"/3/0"}' path '/O/I/R'
expect400 $D/write-attributes '{"path":"/3/0/1","attributes":{"pmin":"x"}}' - 'attributes.pmin'
expect400 $D/write-attributes '{"path":"/3/0/1","attributes":{"color":1}}' - 'unknown attribute'
expect400 $D/read-composite '{"paths":"/3/0"}' paths 'array of 1 to 256'
expect400 $D/read-composite '{"paths":[3]}' 'paths\[0\]' 'LwM2M path'
expect400 $D/delete '{"path":"/3"}' path '/O/I'

out=$("$CURL" -sS -m 10 -w '\n%{http_code}' -X POST "$BASE$C")
echo "$out" | tail -n 1 | grep -qx 400 && echo "$out" | grep -q 'body is required'
ok $? "POST without a body: 400"
head -c 5000 /dev/zero | tr '\0' 'a' >"$WORK/big"
out=$("$CURL" -sS -m 10 -w '\n%{http_code}' -X POST --data-binary "@$WORK/big" "$BASE$C")
echo "$out" | tail -n 1 | grep -qx 413 && echo "$out" | grep -q too_large
ok $? "a body over http_max_body: 413"
out=$(post "$D/frobnicate" '{}')
echo "$out" | tail -n 1 | grep -qx 404
ok $? "an unknown device operation: 404"

# Lists: every one paginated with next_cursor; times in ISO 8601 UTC.
"$CURL" -sS -m 10 -o /dev/null -X POST -d '{"endpoint":"val-1","type":"psk"}' "$BASE$C"
for l in /api/v1/devices /api/v1/credentials /api/v1/tokens /api/v1/audit \
  /api/v1/devices/val-1/requests; do
  out=$("$CURL" -sS -m 10 "$BASE$l?limit=1")
  echo "$out" | grep -q '"next_cursor":' || break
done
ok $? "every list answers with next_cursor (last: $l)"
out=$("$CURL" -sS -m 10 "$BASE/api/v1/devices?limit=abc")
echo "$out" | grep -q 'limit: expected a whole number'
ok $? "a bad limit: 400"
out=$("$CURL" -sS -m 10 "$BASE/api/v1/tokens?cursor=x")
echo "$out" | grep -q '"field":"cursor"'
ok $? "a bad cursor: 400 naming it"
"$CURL" -sS -m 10 "$BASE/api/v1/devices/val-1" |
  grep -Eq '"created_at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"'
ok $? "times are ISO 8601 UTC with milliseconds"

# The OpenAPI document.
"$CURL" -sS -m 10 -D "$WORK/oa.h" -o "$WORK/openapi.json" "$BASE/api/v1/openapi.json"
cmp -s "$WORK/openapi.json" "$top_srcdir/api/openapi.json"
ok $? "GET /api/v1/openapi.json serves api/openapi.json as kept in the tree"
grep -qi '^Content-Type: application/json' "$WORK/oa.h"
ok $? "as application/json"
if command -v python3 >/dev/null &&
  python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  python3 -c 'import json, sys
from openapi_spec_validator import validate
validate(json.load(open(sys.argv[1])))' "$WORK/openapi.json"
  ok $? "openapi-spec-validator accepts it"
else
  diag "openapi-spec-validator not installed: the document is checked by test_api only"
fi

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
