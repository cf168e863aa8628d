#!/bin/sh
# GET /api/v1/events: registrations seen live on a Server-Sent Events
# stream and as NDJSON, filters, heartbeats, many subscribers at once, the
# stream limit, resuming with Last-Event-ID across a daemon restart, and the
# retention sweep.
. "$(dirname "$0")/lib.sh"

command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"
command -v sqlite3 >/dev/null || bail "the sqlite3 shell is required"

write_config "events_heartbeat 1s" "events_max_streams 21"
fotad_start

register() {
  out=$("$COAP_CLIENT" -v 6 -B 5 -m post -t 40 -e '</1/0>' \
    "coap://127.0.0.1:$COAP_PORT/rd?ep=$1&lwm2m=1.1&lt=${2:-300}" 2>&1)
  echo "$out" | grep -q 'c:2.01'
}
# stream NAME QUERY [curl args]: an event stream in the background,
# written to $WORK/NAME; its pid in $WORK/NAME.pid. The real curl, so that
# the pid is curl's own.
stream() {
  n=$1
  q=$2
  shift 2
  "$REAL_CURL" -sS -N -m 60 -H "Authorization: Bearer $FOTAD_TOKEN" "$@" \
    "$BASE/api/v1/events$q" >"$WORK/$n" 2>&1 &
  echo $! >"$WORK/$n.pid"
}
stop_stream() {
  kill "$(cat "$WORK/$1.pid")" 2>/dev/null
  wait "$(cat "$WORK/$1.pid")" 2>/dev/null
}
# wait_for FILE PATTERN: at most 10 s.
wait_for() {
  w=0
  while ! grep -q "$2" "$1" 2>/dev/null; do
    w=$((w + 1))
    [ $w -le 100 ] || return 1
    sleep 0.1
  done
}

# wait_streams N: until fotad counts N open streams (a closed one is
# noticed at its next heartbeat).
wait_streams() {
  w=0
  while ! "$CURL" -sS -m 5 "$BASE/metrics" | grep -q "^fotad_event_streams $1\$"; do
    w=$((w + 1))
    if [ $w -gt 100 ]; then
      diag "$("$CURL" -sS -m 5 "$BASE/metrics" | grep '^fotad_event_streams')"
      return 1
    fi
    sleep 0.1
  done
}

hdrs=$("$CURL" -sS -m 1 -D - -o /dev/null "$BASE/api/v1/events" 2>/dev/null)
echo "$hdrs" | grep -qi '^Content-Type: text/event-stream' &&
  echo "$hdrs" | head -n 1 | grep -q ' 200'
ok $? "the stream is text/event-stream"

stream sse ""
stream nd "?format=ndjson&type=deregistered"
stream dev2 "?format=ndjson&device=ev-2"
sleep 0.5
register ev-1 && register ev-2
ok $? "two devices register"
wait_for "$WORK/sse" 'data: .*"endpoint":"ev-2"'
ok $? "both registrations arrive on the SSE stream"
grep -q '^retry: ' "$WORK/sse"
ok $? "the SSE stream tells EventSource how soon to reconnect"
grep -Eq '^id: [0-9]+$' "$WORK/sse" && grep -q '^event: registered$' "$WORK/sse" &&
  grep -q '^data: {"id":[0-9]*,"type":"registered","at":"[0-9T:.-]*Z","endpoint":"ev-1"' "$WORK/sse"
ok $? "SSE events have id, event type and JSON data"
ids=$(sed -n 's/^id: //p' "$WORK/sse" | tr '\n' ' ')
a=$(echo "$ids" | cut -d' ' -f1)
b=$(echo "$ids" | cut -d' ' -f2)
[ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ]
ok $? "ids increase ($ids)"
wait_for "$WORK/dev2" '"endpoint":"ev-2"' && ! grep -q '"endpoint":"ev-1"' "$WORK/dev2"
ok $? "an NDJSON stream filtered by device gets only that device"
wait_for "$WORK/sse" '^: keep-alive'
ok $? "an idle stream sends heartbeats"

loc=$("$COAP_CLIENT" -v 6 -B 5 -m post -t 40 -e '</1/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=ev-3&lwm2m=1.1&lt=300" 2>&1 |
  sed -n 's/.*Location-Path:rd, Location-Path:\([a-z2-7]*\).*/\1/p' | head -n 1)
"$COAP_CLIENT" -B 5 -m delete "coap://127.0.0.1:$COAP_PORT/rd/$loc" >/dev/null 2>&1
wait_for "$WORK/nd" '"type":"deregistered"'
ok $? "the type filter passes deregistrations"
! grep -q '"type":"registered"' "$WORK/nd" &&
  grep -q '"data":{"reason":"deregistered"}' "$WORK/nd"
ok $? "and only them, with their reason"
stop_stream nd
stop_stream dev2
wait_streams 1
ok $? "closed streams are noticed at the next heartbeat"

# Many subscribers at once do not hold the loop: the first stream and 20
# new ones make events_max_streams.
i=0
while [ $i -lt 20 ]; do
  stream "many$i" "?format=ndjson"
  i=$((i + 1))
done
wait_streams 21
out=$(http GET /api/v1/events)
echo "$out" | tail -n 1 | grep -qx 503 && echo "$out" | grep -q too_many_streams
ok $? "past events_max_streams: 503"
register ev-4
ok $? "a device registers while 21 streams are open"
all=0
i=0
while [ $i -lt 20 ]; do
  wait_for "$WORK/many$i" '"endpoint":"ev-4"' && all=$((all + 1))
  i=$((i + 1))
done
[ $all -eq 20 ]
ok $? "every subscriber gets the event ($all of 20)"
code=$("$CURL" -sS -m 2 -o /dev/null -w '%{http_code}' "$BASE/api/v1/health")
[ "$code" = 200 ]
ok $? "the API answers at once meanwhile"
m=$("$CURL" -sS -m 5 "$BASE/metrics")
echo "$m" | grep -Eq '^fotad_event_streams 21$'
ok $? "metrics count the open streams"
i=0
while [ $i -lt 20 ]; do
  stop_stream "many$i"
  i=$((i + 1))
done
wait_streams 1

# A finite NDJSON export: follow=false ends after the events present.
out=$("$CURL" -sS -m 10 "$BASE/api/v1/events?format=ndjson&after=0&follow=false")
n=$(echo "$out" | grep -c '"type":"registered"')
[ "$n" -eq 4 ]
ok $? "follow=false returns the backlog and ends ($n registrations)"
last=$(echo "$out" | tail -n 1 | sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
[ -n "$last" ]
ok $? "the last event id is $last"

grep -q '"endpoint":"ev-4"' "$WORK/sse"
ok $? "the first SSE stream saw everything too"

# Resume across a restart: the client keeps the last id it saw; fotad
# stops (with a stream open), starts again, devices register; the client
# reconnects with Last-Event-ID and gets exactly what it missed, in order.
fotad_stop
ok "$FOTAD_STATUS" "fotad stops cleanly with a stream open"
wait "$(cat "$WORK/sse.pid")"
ok $? "the open stream ends normally"
fotad_start
register ev-5 && register ev-6
ok $? "two more devices register after the restart"
out=$("$CURL" -sS -m 10 -H "Last-Event-ID: $last" \
  "$BASE/api/v1/events?follow=false")
got=$(echo "$out" | grep -A1 '^event: registered$' |
  sed -n 's/^data: .*"endpoint":"\([^"]*\)".*/\1/p' | tr '\n' ' ')
[ "$got" = "ev-5 ev-6 " ]
ok $? "Last-Event-ID resumes after the restart with the missed registrations ($got)"
ids=$(echo "$out" | sed -n 's/^id: //p' | tr '\n' ' ')
want=$(sqlite3 "$WORK/state/fotad.db" \
  "SELECT id FROM timeline_events WHERE id > $last ORDER BY id" | tr '\n' ' ')
[ -n "$ids" ] && [ "$ids" = "$want" ]
ok $? "exactly the events after $last, in order ($ids)"
out=$("$CURL" -sS -m 10 -H "Last-Event-ID: $last" \
  "$BASE/api/v1/events?after=0&follow=false&format=ndjson")
ids2=$(echo "$out" | sed -n 's/^{"id":\([0-9]*\),.*/\1/p' | tr '\n' ' ')
[ "$ids2" = "$ids" ]
ok $? "the header wins over ?after="
stream live "" -H "Last-Event-ID: $last"
wait_for "$WORK/live" '"endpoint":"ev-6"'
ok $? "a live stream with Last-Event-ID first catches up"
register ev-7
wait_for "$WORK/live" '"endpoint":"ev-7"'
ok $? "then follows new events"
stop_stream live

out=$(http GET '/api/v1/events?format=xml')
echo "$out" | tail -n 1 | grep -qx 400 && echo "$out" | grep -q '"field":"format"'
ok $? "a bad format: 400"
out=$(http GET '/api/v1/events?type=Registered')
echo "$out" | tail -n 1 | grep -qx 400 && echo "$out" | grep -q '"field":"type"'
ok $? "a bad type filter: 400"
out=$(http GET '/api/v1/events' -H 'Last-Event-ID: x1')
echo "$out" | tail -n 1 | grep -qx 400 && echo "$out" | grep -q '"field":"Last-Event-ID"'
ok $? "a bad Last-Event-ID: 400"

# Retention: an event older than events_retention is swept at start-up.
fotad_stop
sqlite3 "$WORK/state/fotad.db" \
  "INSERT INTO timeline_events (at, type, endpoint) VALUES (1000, 'ancient', 'old')"
write_config "events_retention 1h"
fotad_start
i=0
while [ $i -lt 50 ]; do
  n=$(sqlite3 "$WORK/state/fotad.db" "SELECT count(*) FROM timeline_events WHERE type = 'ancient'")
  [ "$n" = 0 ] && break
  sleep 0.1
  i=$((i + 1))
done
[ "$n" = 0 ]
ok $? "an event past the retention is deleted"
n=$(sqlite3 "$WORK/state/fotad.db" "SELECT count(*) FROM timeline_events")
[ "$n" -ge 7 ]
ok $? "recent events are kept ($n)"
grep -q 'deleted 1 events older than 3600s' "$FOTAD_LOG"
ok $? "the sweep is logged"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
