#!/bin/sh
# Device tags through the REST API: add, list, replace and remove, the tag
# grammar and the limit per device, unknown devices, scopes, the audit
# trail, the ?tag= filter of the device listing (paginated), tags in the
# device's details, and tags kept across a restart.
. "$(dirname "$0")/lib.sh"

command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"

fotad_start

register() {
  "$COAP_CLIENT" -B 5 -m post -t 40 -e '</1/0>,</3/0>' \
    "coap://127.0.0.1:$COAP_PORT/rd?ep=$1&lwm2m=1.1&lt=300" >/dev/null 2>&1
}
for ep in tag-1 tag-2 tag-3; do
  register $ep
done
device_online tag-1 && device_online tag-2 && device_online tag-3
ok $? "three devices registered"

# expect STATUS OUTPUT: the last line of http's output is STATUS.
status() {
  echo "$1" | tail -n 1
}
body() {
  echo "$1" | sed '$d'
}
T=/api/v1/devices/tag-1/tags

out=$(http GET $T)
[ "$(status "$out")" = 200 ] &&
  body "$out" | grep -qx '{"endpoint":"tag-1","tags":\[\]}'
ok $? "a device starts without tags ($(body "$out"))"

out=$(http PUT $T/eu)
[ "$(status "$out")" = 201 ] && body "$out" | grep -q '"tags":\["eu"\]'
ok $? "PUT .../tags/eu: 201 with the tags ($(body "$out"))"
out=$(http PUT $T/eu)
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"tags":\["eu"\]'
ok $? "the same tag again: 200, nothing added"
out=$(http PUT $T/Canary.fw-2:rc_1)
[ "$(status "$out")" = 201 ]
ok $? "a tag of every allowed character class: 201"
out=$(http GET $T)
body "$out" | grep -q '"tags":\["Canary.fw-2:rc_1","eu"\]'
ok $? "tags are listed in byte order ($(body "$out"))"
http GET /api/v1/devices/tag-1 | grep -q '"tags":\["Canary.fw-2:rc_1","eu"\]'
ok $? "GET /api/v1/devices/tag-1 shows the tags"

out=$(http DELETE $T/Canary.fw-2:rc_1)
[ "$(status "$out")" = 204 ] && [ -z "$(body "$out")" ]
ok $? "DELETE a tag: 204 without a body"
out=$(http DELETE $T/Canary.fw-2:rc_1)
[ "$(status "$out")" = 404 ] && body "$out" | grep -q '"code":"not_found"'
ok $? "DELETE a tag the device does not have: 404 ($(body "$out"))"
http GET $T | grep -q '"tags":\["eu"\]'
ok $? "the other tag stays"

# Replacing the whole set.
put_set() {
  http PUT "$1" -H 'Content-Type: application/json' --data-binary "$2"
}
out=$(put_set $T '{"tags":["west","eu","beta","eu"]}')
[ "$(status "$out")" = 200 ] &&
  body "$out" | grep -q '"tags":\["beta","eu","west"\]'
ok $? "PUT .../tags replaces the set, duplicates once ($(body "$out"))"
out=$(put_set $T '{"tags":[]}')
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"tags":\[\]'
ok $? "an empty set removes every tag"
http PUT $T -d '{"tags":["eu","beta"]}' | tail -n 1 | grep -qx 200
ok $? "set again (curl -d, as the README shows)"

# The grammar, the limit, the body.
# bad STATUS-OUTPUT FIELD WHAT DESCRIPTION
bad() {
  okay=0
  [ "$(status "$1")" = 400 ] || okay=1
  body "$1" | grep -q "\"field\":\"$2\"" || okay=1
  body "$1" | grep -q "$3" || okay=1
  ok $okay "$4: 400 naming $2 ($(body "$1"))"
}
long=$(printf '%065d' 0)
bad "$(http PUT "$T/bad!tag")" tag 'A-Z a-z 0-9' "a tag with '!'"
bad "$(http PUT "$T/$long")" tag 'got 65' "a tag of 65 characters"
bad "$(http PUT "$T/caf%C3%A9")" tag 'A-Z a-z 0-9' "a tag with a non-ASCII letter"
bad "$(http DELETE "$T/bad!tag")" tag 'A-Z a-z 0-9' "DELETE of an invalid tag"
bad "$(put_set $T '{"tags":["ok","sp ace"]}')" 'tags\[1\]' 'character 3' \
  "a set with an invalid tag"
bad "$(put_set $T '{"tags":["ok",7]}')" 'tags\[1\]' 'expected a string' \
  "a set with a number"
bad "$(put_set $T '{"tags":[""]}')" 'tags\[0\]' 'got 0' "an empty tag"
bad "$(put_set $T '{"tags":"eu"}')" tags 'an array of tags' \
  "tags not an array"
bad "$(put_set $T '{}')" tags 'required' "no tags member"
bad "$(put_set $T '{"tags":[],"extra":1}')" extra 'unknown field' \
  "an unknown member"
http GET $T | grep -q '"tags":\["beta","eu"\]'
ok $? "refused changes left the tags as they were"

set64=$(i=0; while [ $i -lt 64 ]; do printf '"t%02d",' $i; i=$((i + 1)); done)
out=$(put_set $T "{\"tags\":[${set64%,}]}")
[ "$(status "$out")" = 200 ] && [ "$(body "$out" | grep -o '"t[0-9]*"' | wc -l)" = 64 ]
ok $? "64 tags may be set"
bad "$(put_set $T "{\"tags\":[${set64}\"t64\"]}")" tags 'at most 64 tags (got 65)' \
  "a set of 65 tags"
bad "$(http PUT $T/one-more)" tag 'already has 64 tags' "a 65th tag"
out=$(http PUT $T/t07)
[ "$(status "$out")" = 200 ]
ok $? "a tag it has is still 200 at the limit"
put_set $T '{"tags":["eu","beta"]}' | tail -n 1 | grep -qx 200
ok $? "back to two tags"

# Unknown devices.
for req in "GET /api/v1/devices/nope/tags" "PUT /api/v1/devices/nope/tags/eu" \
  "DELETE /api/v1/devices/nope/tags/eu"; do
  out=$(http $req)
  [ "$(status "$out")" = 404 ] &&
    body "$out" | grep -q '"code":"unknown_device"'
  ok $? "$req: 404 unknown_device"
done
out=$(put_set /api/v1/devices/nope/tags '{"tags":["eu"]}')
[ "$(status "$out")" = 404 ] && body "$out" | grep -q '"code":"unknown_device"'
ok $? "PUT /api/v1/devices/nope/tags: 404 unknown_device"

# Scopes: read may list, operator may change.
mktoken() {
  http POST /api/v1/tokens -d "{\"name\":\"$1\",\"scope\":\"$1\"}" |
    sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}
READ_TOKEN=$(mktoken read)
OP_TOKEN=$(mktoken operator)
[ -n "$READ_TOKEN" ] && [ -n "$OP_TOKEN" ]
ok $? "a read and an operator token"
as() {
  tok=$1
  shift
  "$REAL_CURL" -sS -m 10 -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $tok" "$@"
}
[ "$(as "$READ_TOKEN" "$BASE$T")" = 200 ]
ok $? "a read token may list tags"
[ "$(as "$READ_TOKEN" -X PUT "$BASE$T/ro")" = 403 ] &&
  [ "$(as "$READ_TOKEN" -X DELETE "$BASE$T/eu")" = 403 ] &&
  [ "$(as "$READ_TOKEN" -X PUT -d '{"tags":[]}' "$BASE$T")" = 403 ]
ok $? "a read token may not change them (403)"
[ "$(as "$OP_TOKEN" -X PUT "$BASE/api/v1/devices/tag-2/tags/eu")" = 201 ]
ok $? "an operator token may"

# The audit trail.
audit() {
  http GET "/api/v1/audit?action=$1"
}
audit device.tag.add | grep -q '"target":"/api/v1/devices/tag-2/tags/eu"' &&
  audit device.tag.add | grep -q '"name":"operator"'
ok $? "adding a tag is audited with the token"
[ "$(audit device.tag.add | grep -o '"target":"/api/v1/devices/tag-1/tags/eu"' | wc -l)" = 1 ]
ok $? "adding a tag the device had is not audited again"
audit device.tag.remove |
  grep -q '"target":"/api/v1/devices/tag-1/tags/Canary.fw-2:rc_1"'
ok $? "removing a tag is audited"
audit device.tags.set | grep -q '"details":{"tags":\["eu","beta"\],"previous":\["t00",'
ok $? "replacing the set is audited with the previous set"

# The ?tag= filter of the listing.
out=$(http GET '/api/v1/devices?tag=eu')
[ "$(status "$out")" = 200 ] &&
  body "$out" | grep -q '"endpoint":"tag-1"' &&
  body "$out" | grep -q '"endpoint":"tag-2"' &&
  ! body "$out" | grep -q '"endpoint":"tag-3"'
ok $? "?tag=eu lists the devices tagged eu only"
out=$(http GET '/api/v1/devices?tag=beta&prefix=tag-&online=true')
body "$out" | grep -q '"endpoint":"tag-1"' &&
  ! body "$out" | grep -q '"endpoint":"tag-2"'
ok $? "?tag= combines with the other filters"
out=$(http GET '/api/v1/devices?tag=nobody')
body "$out" | grep -q '"devices":\[\],"next_cursor":null'
ok $? "a tag nobody has: an empty page"
page1=$(http GET '/api/v1/devices?tag=eu&limit=1')
cur=$(body "$page1" | sed -n 's/.*"next_cursor":"\([^"]*\)".*/\1/p')
page2=$(http GET "/api/v1/devices?tag=eu&limit=1&cursor=$cur")
page3=$(http GET "/api/v1/devices?tag=eu&limit=1&cursor=tag-2")
[ "$cur" = tag-1 ] && body "$page2" | grep -q '"endpoint":"tag-2"' &&
  body "$page3" | grep -q '"devices":\[\],"next_cursor":null'
ok $? "?tag= pages with next_cursor (cursor $cur)"
bad "$(http GET '/api/v1/devices?tag=no!pe')" tag 'A-Z a-z 0-9' "?tag= invalid"

# Tags are stored: a restart keeps them.
fotad_stop
ok "$FOTAD_STATUS" "stopped with tags set"
fotad_start
http GET $T | grep -q '"tags":\["beta","eu"\]'
ok $? "after a restart the tags are still there"
http GET /api/v1/devices/tag-2 | grep -q '"tags":\["eu"\]'
ok $? "and the device's details show them"
out=$(http GET '/api/v1/devices?tag=eu')
body "$out" | grep -q '"endpoint":"tag-1"' && body "$out" | grep -q '"endpoint":"tag-2"'
ok $? "and the filter finds them"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
