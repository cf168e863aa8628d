#!/bin/sh
# GET /metrics: the Prometheus text format checked line by line by a strict
# parser (tests/promcheck, itself checked on bad inputs first), and the
# counters following registrations, updates, deregistrations, DTLS
# failures and API requests.
. "$(dirname "$0")/lib.sh"

command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"
PROMCHECK="$top_builddir/tests/promcheck"
[ -x "$PROMCHECK" ] || bail "$PROMCHECK is not built (make check builds it)"

# The checker refuses what it must.
bad() {
  printf '%b' "$2" >"$WORK/bad.prom"
  ! "$PROMCHECK" "$WORK/bad.prom" >/dev/null 2>&1
  ok $? "promcheck refuses $1"
}
good='# HELP a_total A.\n# TYPE a_total counter\na_total 1\n'
printf '%b' "$good" >"$WORK/good.prom"
"$PROMCHECK" "$WORK/good.prom" >/dev/null
ok $? "promcheck accepts a minimal valid exposition"
bad "a sample without TYPE" '# HELP a A.\na 1\n'
bad "TYPE after the samples" '# HELP a A.\na 1\n# TYPE a gauge\n'
bad "a bad metric name" '# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n'
bad "a bad label" '# HELP a A.\n# TYPE a gauge\na{1x="y"} 1\n'
bad "an unquoted label value" '# HELP a A.\n# TYPE a gauge\na{x=y} 1\n'
bad "a bad escape" '# HELP a A.\n# TYPE a gauge\na{x="\\q"} 1\n'
bad "a value that is no float" '# HELP a A.\n# TYPE a gauge\na 1,5\n'
bad "a duplicate series" '# HELP a A.\n# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'
bad "a counter not named _total" '# HELP a A.\n# TYPE a counter\na 1\n'
bad "a negative counter" '# HELP a_total A.\n# TYPE a_total counter\na_total -1\n'
bad "a split family" '# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x="2"} 1\n'
bad "non-cumulative buckets" '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 4\nh_sum 1\nh_count 4\n'
bad "a histogram without +Inf" '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 5\nh_sum 1\nh_count 5\n'
bad "a _count unlike +Inf" '# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 5\nh_sum 1\nh_count 6\n'
bad "an empty line" '# HELP a A.\n\n# TYPE a gauge\na 1\n'
bad "a missing final line feed" '# HELP a A.\n# TYPE a gauge\na 1'

write_config "coap_allow_nosec yes"
fotad_start

scrape() {
  "$CURL" -sS -m 10 -D "$WORK/metrics.h" -o "$WORK/metrics" "$BASE/metrics"
}
# metric SERIES: the value of one series, labels and all, as written.
metric() {
  awk -v k="$1" '$1 == k { print $2 }' "$WORK/metrics"
}

scrape
grep -qi '^Content-Type: text/plain; version=0.0.4' "$WORK/metrics.h"
ok $? "served as text/plain; version=0.0.4"
out=$("$PROMCHECK" "$WORK/metrics" 2>&1)
ok $? "a fresh daemon's metrics pass the strict parser: $out"
[ "$(metric fotad_devices_registered)" = 0 ] &&
  [ "$(metric fotad_registrations_total)" = 0 ]
ok $? "no device, no registration"

coap() {
  "$COAP_CLIENT" -v 6 -B 5 "$@" 2>&1
}
loc1=$(coap -m post -t 40 -e '</1/0>,</3/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=m-1&lwm2m=1.1&lt=300" |
  sed -n 's/.*Location-Path:rd, Location-Path:\([a-z2-7]*\).*/\1/p' | head -n 1)
loc2=$(coap -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=m-2&lwm2m=1.1&lt=300" |
  sed -n 's/.*Location-Path:rd, Location-Path:\([a-z2-7]*\).*/\1/p' | head -n 1)
coap -m post "coap://127.0.0.1:$COAP_PORT/rd/$loc1?lt=600" >/dev/null
coap -m delete "coap://127.0.0.1:$COAP_PORT/rd/$loc2" >/dev/null
[ -n "$loc1" ] && [ -n "$loc2" ]
ok $? "two devices register, one updates, one deregisters"
# A handshake with an unknown PSK identity fails.
coap -u nobody -k not-a-key -m get "coaps://127.0.0.1:$COAPS_PORT/x" >/dev/null
"$CURL" -sS -m 10 -o /dev/null "$BASE/api/v1/devices"
"$CURL" -sS -m 10 -o /dev/null "$BASE/api/v1/devices/none"
"$REAL_CURL" -sS -m 10 -o /dev/null "$BASE/api/v1/devices"

# The pump counts events once committed; give the loop a moment.
i=0
while [ $i -lt 50 ]; do
  scrape
  [ "$(metric fotad_registrations_total)" = 2 ] &&
    [ "$(metric 'fotad_deregistrations_total{reason="deregistered"}')" = 1 ] &&
    break
  sleep 0.1
  i=$((i + 1))
done
out=$("$PROMCHECK" "$WORK/metrics" 2>&1)
ok $? "after traffic the metrics still pass the strict parser: $out"
[ "$(metric fotad_registrations_total)" = 2 ]
ok $? "registrations counted ($(metric fotad_registrations_total))"
[ "$(metric fotad_registration_updates_total)" = 1 ]
ok $? "updates counted"
[ "$(metric 'fotad_deregistrations_total{reason="deregistered"}')" = 1 ]
ok $? "deregistrations counted by reason"
[ "$(metric 'fotad_events_total{type="registered"}')" = 2 ]
ok $? "events counted by type"
[ "$(metric fotad_devices)" = 2 ] && [ "$(metric fotad_devices_registered)" = 1 ] &&
  [ "$(metric fotad_devices_awake)" = 1 ] && [ "$(metric fotad_devices_sleeping)" = 0 ]
ok $? "devices known, registered, awake and sleeping"
[ "$(metric fotad_dtls_handshake_failures_total)" -ge 1 ]
ok $? "the failed DTLS handshake is counted"
[ "$(metric 'fotad_http_requests_total{method="GET",route="/api/v1/devices",code="200"}')" = 1 ] &&
  [ "$(metric 'fotad_http_requests_total{method="GET",route="/api/v1/devices",code="401"}')" = 1 ] &&
  [ "$(metric 'fotad_http_requests_total{method="GET",route="/api/v1/devices/{ep}",code="404"}')" = 1 ]
ok $? "API requests counted by route and status"
[ "$(metric fotad_sqlite_transaction_seconds_count)" -ge 1 ] &&
  grep -q '^fotad_sqlite_transaction_seconds_bucket{le="+Inf"}' "$WORK/metrics"
ok $? "database transactions are timed"
[ "$(metric fotad_loop_iteration_seconds_count)" -ge 1 ]
ok $? "loop iterations are timed"
for m in fotad_queue_depth fotad_requests_in_flight fotad_observations \
  fotad_http_auth_failures_total fotad_build_info; do
  grep -q "^# TYPE $m " "$WORK/metrics" || break
done
ok $? "queue depth, requests in flight, observations, auth failures, build info"
[ "$(metric 'fotad_coap_requests_total{code="2.01"}')" = 2 ] &&
  [ "$(metric 'fotad_coap_requests_total{code="2.04"}')" = 1 ] &&
  [ "$(metric 'fotad_coap_requests_total{code="2.02"}')" = 1 ]
ok $? "CoAP requests from devices counted by response code"
grep -q '^# TYPE fotad_blocks_served_total counter' "$WORK/metrics"
ok $? "package blocks served"
grep -q '^# TYPE fotad_jobs gauge' "$WORK/metrics" &&
  grep -q '^# TYPE fotad_rollouts gauge' "$WORK/metrics"
ok $? "jobs and rollouts by state"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
