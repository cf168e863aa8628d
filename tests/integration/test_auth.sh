#!/bin/sh
# Authentication and authorization of the REST API: the bootstrap admin
# token (file mode 0600, never logged), 401 without a token or with a bad
# or revoked one, 403 for a scope too low, tokens created (shown once),
# listed without secrets and revoked, the audit log of who did what,
# Idempotency-Key replays, ETag/If-Match, the per-token rate limit (429),
# and /metrics opened by metrics_public.
. "$(dirname "$0")/lib.sh"

command -v "$REAL_CURL" >/dev/null || bail "curl is required"

fotad_start
ok 0 "fotad listens (http=$HTTP_PORT)"

perm=$(stat -c %a "$TOKEN_FILE")
[ "$perm" = 600 ]
ok $? "the bootstrap token file is private (mode $perm)"
echo "$FOTAD_TOKEN" | grep -Eq '^fotad_[A-Za-z0-9_-]{43}$'
ok $? "the bootstrap token looks like a token"
! grep -qF "$FOTAD_TOKEN" "$FOTAD_LOG"
ok $? "the bootstrap token is not in the log"
grep -q "created the bootstrap admin API token" "$FOTAD_LOG"
ok $? "its creation is logged (without the token)"

# anon METHOD PATH [curl args]: no token; body, then status on a last line.
anon() {
  m=$1
  p=$2
  shift 2
  "$REAL_CURL" -sS -m 10 -X "$m" -w '\n%{http_code}' "$@" "$BASE$p"
}
# as TOKEN METHOD PATH [curl args]
as() {
  t=$1
  m=$2
  p=$3
  shift 3
  "$REAL_CURL" -sS -m 10 -X "$m" -w '\n%{http_code}' \
    -H "Authorization: Bearer $t" "$@" "$BASE$p"
}
status() { echo "$1" | tail -n 1; }
field() {
  echo "$1" | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" | head -n 1
}
numfield() {
  echo "$1" | sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" | head -n 1
}

out=$(anon GET /api/v1/health)
[ "$(status "$out")" = 200 ]
ok $? "health needs no token"

hdrs=$("$REAL_CURL" -sS -m 10 -D - -o "$WORK/body" "$BASE/api/v1/devices")
echo "$hdrs" | head -n 1 | grep -q ' 401' &&
  echo "$hdrs" | grep -qi '^WWW-Authenticate: Bearer realm="fotad"' &&
  grep -q '"code":"unauthorized"' "$WORK/body"
ok $? "no token: 401 with WWW-Authenticate and a JSON error"

hdrs=$("$REAL_CURL" -sS -m 10 -D - -o "$WORK/body" \
  -H 'Authorization: Bearer fotad_not-a-real-token' "$BASE/api/v1/devices")
echo "$hdrs" | head -n 1 | grep -q ' 401' &&
  echo "$hdrs" | grep -qi 'WWW-Authenticate: Bearer .*error="invalid_token"' &&
  grep -q 'unknown token' "$WORK/body"
ok $? "a bad token: 401 invalid_token"
grep -q "unknown token" "$FOTAD_LOG" && ! grep -q 'fotad_not-a-real-token' "$FOTAD_LOG"
ok $? "the refusal is logged without the token"

out=$(anon GET /api/v1/devices -H 'Authorization: Basic Zm9vOmJhcg==')
[ "$(status "$out")" = 401 ] && echo "$out" | grep -q 'Bearer TOKEN'
ok $? "another scheme: 401"
out=$(anon GET /api/v1/no-such-thing)
[ "$(status "$out")" = 401 ]
ok $? "an unknown path without a token: 401, not 404"
out=$(as "$FOTAD_TOKEN" GET /api/v1/no-such-thing)
[ "$(status "$out")" = 404 ]
ok $? "with a token: 404"
out=$(anon GET /metrics)
[ "$(status "$out")" = 401 ]
ok $? "/metrics needs a token by default"
out=$(anon GET /api/v1/openapi.json)
[ "$(status "$out")" = 401 ]
ok $? "so does the OpenAPI document"

# Tokens of each scope, made by the bootstrap admin.
mk() {
  as "$FOTAD_TOKEN" POST /api/v1/tokens -d "{\"name\":\"$1\",\"scope\":\"$2\"}"
}
out=$(mk reader read)
[ "$(status "$out")" = 201 ] && echo "$out" | grep -q '"scope":"read"'
ok $? "an admin creates a read token (201)"
READ=$(field "$out" token)
READ_ID=$(numfield "$out" id)
echo "$READ" | grep -Eq '^fotad_[A-Za-z0-9_-]{43}$'
ok $? "the new token is in the reply"
out=$(mk ops operator)
OPER=$(field "$out" token)
[ "$(status "$out")" = 201 ] && [ -n "$OPER" ]
ok $? "and an operator token"
! grep -qF "$READ" "$FOTAD_LOG" && ! grep -qF "$OPER" "$FOTAD_LOG"
ok $? "new tokens are not logged"
! grep -qaF "$READ" "$WORK/state/fotad.db" "$WORK/state/fotad.db-wal" 2>/dev/null
ok $? "nor stored in the database (only hashes)"

out=$(as "$FOTAD_TOKEN" GET /api/v1/tokens)
[ "$(status "$out")" = 200 ] && echo "$out" | grep -q '"name":"reader"' &&
  echo "$out" | grep -q '"name":"bootstrap"' && ! echo "$out" | grep -q '"token"'
ok $? "tokens are listed without secrets"
out=$(as "$FOTAD_TOKEN" GET "/api/v1/tokens?limit=1")
echo "$out" | grep -q '"next_cursor":"1"'
ok $? "the token list is paginated"
cur=$(field "$out" next_cursor)
out=$(as "$FOTAD_TOKEN" GET "/api/v1/tokens?limit=1&cursor=$cur")
echo "$out" | grep -q '"name":"reader"'
ok $? "its cursor gives the next token"

# Scopes: read < operator < admin.
out=$(as "$READ" GET /api/v1/devices)
[ "$(status "$out")" = 200 ]
ok $? "read token: device listing 200"
hdrs=$("$REAL_CURL" -sS -m 10 -D - -o "$WORK/body" -X POST \
  -H "Authorization: Bearer $READ" -d '{"path":"/3/0"}' \
  "$BASE/api/v1/devices/dev-x/read")
echo "$hdrs" | head -n 1 | grep -q ' 403' &&
  echo "$hdrs" | grep -qi 'error="insufficient_scope", scope="operator"' &&
  grep -q '"code":"forbidden"' "$WORK/body"
ok $? "read token: device operation 403 insufficient_scope"
out=$(as "$READ" DELETE /api/v1/requests/1)
[ "$(status "$out")" = 403 ]
ok $? "read token: cancelling a request 403"
out=$(as "$READ" GET /api/v1/credentials)
[ "$(status "$out")" = 403 ]
ok $? "read token: credentials 403"
out=$(as "$OPER" POST /api/v1/devices/dev-x/read -d '{"path":"/3/0"}')
[ "$(status "$out")" = 404 ] && echo "$out" | grep -q unknown_device
ok $? "operator token: device operation allowed (404 for an unknown device)"
out=$(as "$OPER" DELETE /api/v1/requests/99)
[ "$(status "$out")" = 404 ]
ok $? "operator token: request cancel allowed"
out=$(as "$OPER" POST /api/v1/credentials -d '{"endpoint":"e","type":"psk"}')
[ "$(status "$out")" = 403 ]
ok $? "operator token: creating credentials 403"
out=$(as "$OPER" POST /api/v1/tokens -d '{"name":"x","scope":"admin"}')
[ "$(status "$out")" = 403 ]
ok $? "operator token: creating tokens 403"
out=$(as "$OPER" GET /api/v1/audit)
[ "$(status "$out")" = 403 ]
ok $? "operator token: audit 403"
out=$(as "$READ" GET /metrics)
[ "$(status "$out")" = 200 ]
ok $? "read token: metrics 200"

# An operator's request to a real (simulated) device is answered at once:
# the connection waiting for the device is resumed and run without delay.
"$top_builddir/fotad-sim" -s "coap://127.0.0.1:$COAP_PORT" -n 1 -e 'sim%d' \
  >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
i=0
while [ $i -lt 100 ] && ! as "$READ" GET /api/v1/devices/sim0 | grep -q '"online":true'; do
  sleep 0.1
  i=$((i + 1))
done
out=$(as "$OPER" POST /api/v1/devices/sim0/read -d '{"path":"/3/0/0"}' -m 3)
[ "$(status "$out")" = 200 ] && echo "$out" | grep -q '"code":"2.05"'
ok $? "operator token: a device read is answered ($(echo "$out" | head -n 1))"
kill "$SIM_PID" 2>/dev/null
wait "$SIM_PID" 2>/dev/null

# Credentials by the admin, audited.
out=$(as "$FOTAD_TOKEN" POST /api/v1/credentials -d '{"endpoint":"dev-a","type":"psk"}')
[ "$(status "$out")" = 201 ]
ok $? "admin: credential created"

# ETag and If-Match.
hdrs=$("$REAL_CURL" -sS -m 10 -D - -o /dev/null -H "Authorization: Bearer $FOTAD_TOKEN" \
  "$BASE/api/v1/credentials/dev-a")
etag=$(echo "$hdrs" | sed -n 's/^[Ee][Tt][Aa][Gg]: *\("[0-9a-f]*"\).*/\1/p')
[ -n "$etag" ]
ok $? "a GET carries an ETag ($etag)"
code=$("$REAL_CURL" -sS -m 10 -o /dev/null -w '%{http_code}' \
  -H "Authorization: Bearer $FOTAD_TOKEN" -H "If-None-Match: $etag" \
  "$BASE/api/v1/credentials/dev-a")
[ "$code" = 304 ]
ok $? "If-None-Match with it: 304"
out=$(as "$FOTAD_TOKEN" DELETE /api/v1/credentials/dev-a -H 'If-Match: "0000"')
[ "$(status "$out")" = 412 ] && echo "$out" | grep -q precondition_failed
ok $? "DELETE with a stale If-Match: 412"
out=$(as "$FOTAD_TOKEN" DELETE /api/v1/credentials/dev-a -H "If-Match: $etag")
[ "$(status "$out")" = 200 ]
ok $? "DELETE with the current If-Match: 200"

# Idempotency-Key: a retry gets the first reply again.
idem() {
  "$REAL_CURL" -sS -m 10 -D "$WORK/idem.h" -w '\n%{http_code}' -X POST \
    -H "Authorization: Bearer $FOTAD_TOKEN" -H "Idempotency-Key: $1" \
    -d "$2" "$BASE/api/v1/tokens"
}
one=$(idem key-1 '{"name":"ci","scope":"operator"}')
two=$(idem key-1 '{"name":"ci","scope":"operator"}')
[ "$(status "$one")" = 201 ] && [ "$one" = "$two" ] &&
  grep -qi '^Idempotent-Replayed: true' "$WORK/idem.h"
ok $? "the same Idempotency-Key replays the first reply, token included"
n=$(as "$FOTAD_TOKEN" GET /api/v1/tokens | grep -o '"name":"ci"' | wc -l)
[ "$n" -eq 1 ]
ok $? "and creates nothing more ($n token named ci)"
CI=$(field "$one" token)
! grep -qaF "$CI" "$WORK/state/fotad.db" "$WORK/state/fotad.db-wal" 2>/dev/null
ok $? "the kept reply does not hold the token in clear"
out=$(idem key-1 '{"name":"other","scope":"read"}')
[ "$(status "$out")" = 422 ] && echo "$out" | grep -q idempotency_key_reused
ok $? "the same key with another body: 422"
out=$(as "$FOTAD_TOKEN" POST /api/v1/credentials -H 'Idempotency-Key: key-1' \
  -d '{"endpoint":"dev-b","type":"psk"}')
again=$(as "$FOTAD_TOKEN" POST /api/v1/credentials -H 'Idempotency-Key: key-1' \
  -d '{"endpoint":"dev-b","type":"psk"}')
[ "$(status "$out")" = 201 ] && [ "$out" = "$again" ]
ok $? "keys are per resource: a credential with key-1 too, replayed with its key"

# Revocation.
out=$(as "$FOTAD_TOKEN" DELETE "/api/v1/tokens/$READ_ID")
[ "$(status "$out")" = 200 ] && echo "$out" | grep -Eq '"revoked_at":"[0-9]{4}-'
ok $? "a token is revoked"
hdrs=$("$REAL_CURL" -sS -m 10 -D - -o "$WORK/body" \
  -H "Authorization: Bearer $READ" "$BASE/api/v1/devices")
echo "$hdrs" | head -n 1 | grep -q ' 401' && grep -q 'revoked' "$WORK/body" &&
  echo "$hdrs" | grep -qi 'error="invalid_token"'
ok $? "a revoked token: 401"
out=$(as "$FOTAD_TOKEN" DELETE "/api/v1/tokens/$READ_ID")
[ "$(status "$out")" = 409 ]
ok $? "revoking it again: 409"
out=$(as "$FOTAD_TOKEN" GET "/api/v1/tokens/$READ_ID")
[ "$(status "$out")" = 200 ] && echo "$out" | grep -q '"revoked_at":"'
ok $? "it stays listed, revoked"

# Validation of the token body.
out=$(as "$FOTAD_TOKEN" POST /api/v1/tokens -d '{"name":"x","scope":"root"}')
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"scope"'
ok $? "an unknown scope: 400 naming the field"
out=$(as "$FOTAD_TOKEN" POST /api/v1/tokens -d '{"name":"x","scope":"read","ttl":5}')
[ "$(status "$out")" = 400 ] && echo "$out" | grep -q '"field":"ttl"' &&
  echo "$out" | grep -q 'unknown field'
ok $? "an unknown field: 400 naming it"

# The audit log: who did what.
out=$(as "$FOTAD_TOKEN" GET /api/v1/audit)
[ "$(status "$out")" = 200 ]
ok $? "the audit log answers"
echo "$out" | grep -q '"action":"token.revoke","target":"/api/v1/tokens/'"$READ_ID"'"'
ok $? "it records the revocation and its target"
echo "$out" | grep -q '"token":{"id":1,"name":"bootstrap"},"action":"credential.delete"'
ok $? "with the token that did it"
echo "$out" | grep -q '"action":"credential.create"' &&
  echo "$out" | grep -q '"action":"token.create"' &&
  echo "$out" | grep -q '"token":null,"action":"token.create"'
ok $? "credential and token creations too, the bootstrap one by fotad itself"
echo "$out" | grep -Eq '"at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]*Z"' &&
  echo "$out" | grep -q '"remote":"127.0.0.1:'
ok $? "each entry has an ISO 8601 time and the client's address"
n=$(echo "$out" | grep -o '"action":"token.create"' | wc -l)
[ "$n" -eq 4 ]
ok $? "one entry per token created, none for the replay ($n)"
first=$(as "$FOTAD_TOKEN" GET "/api/v1/audit?limit=2")
cur=$(field "$first" next_cursor)
second=$(as "$FOTAD_TOKEN" GET "/api/v1/audit?limit=2&cursor=$cur")
[ -n "$cur" ] && [ "$(status "$second")" = 200 ] &&
  [ "$(numfield "$second" id)" -lt "$cur" ]
ok $? "the audit log is paginated newest first"
out=$(as "$FOTAD_TOKEN" GET "/api/v1/audit?action=credential.delete")
n=$(echo "$out" | grep -o '"action":' | wc -l)
[ "$n" -eq 1 ]
ok $? "and filtered by action"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"

# A restart keeps the tokens and does not make a new bootstrap token.
sum=$(sha256sum "$TOKEN_FILE")
write_config "api_rate_limit 1" "api_rate_burst 3" "metrics_public yes"
fotad_start
[ "$(sha256sum "$TOKEN_FILE")" = "$sum" ]
ok $? "after a restart the token file is unchanged"
out=$(as "$OPER" GET /api/v1/devices)
[ "$(status "$out")" = 200 ]
ok $? "and tokens still work"
out=$(as "$READ" GET /api/v1/devices)
[ "$(status "$out")" = 401 ]
ok $? "revoked ones still do not"

# Rate limit: a burst of 3, then 429 with Retry-After.
for i in 1 2 3; do
  as "$OPER" GET /api/v1/devices >/dev/null
done
hdrs=$("$REAL_CURL" -sS -m 10 -D - -o "$WORK/body" \
  -H "Authorization: Bearer $OPER" "$BASE/api/v1/devices")
echo "$hdrs" | head -n 1 | grep -q ' 429' &&
  echo "$hdrs" | grep -Eqi '^Retry-After: [1-9]' &&
  grep -q '"code":"rate_limited"' "$WORK/body"
ok $? "past the burst: 429 with Retry-After"
out=$(as "$FOTAD_TOKEN" GET /api/v1/devices)
[ "$(status "$out")" = 200 ]
ok $? "the limit is per token"
sleep 2
out=$(as "$OPER" GET /api/v1/devices)
[ "$(status "$out")" = 200 ]
ok $? "after a pause the token may go on"

out=$(anon GET /metrics)
[ "$(status "$out")" = 200 ] &&
  echo "$out" | grep -Eq '^fotad_http_rate_limited_total [1-9]' &&
  echo "$out" | grep -Eq '^fotad_http_auth_failures_total [1-9]'
ok $? "metrics_public: /metrics without a token, counting refusals"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
! grep -qF "$FOTAD_TOKEN" "$FOTAD_LOG"
ok $? "no token anywhere in the log"
done_testing
