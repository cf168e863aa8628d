#!/bin/sh
# Rollouts over time: a maintenance window and an end time, with fotad's
# wall clock moved by the test (FOTAD_TEST_CLOCK_FILE), and kill -9 of
# fotad twice in the middle of a rollout: after each restart the rollout
# goes on, no job is started twice and no result is lost.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rollout_lib.sh"

# shellcheck disable=SC2034 # read by lib.sh
FOTAD_LOG_LEVEL=info
CLOCK="$WORK/clock"
echo 0 >"$CLOCK"
export FOTAD_TEST_CLOCK_FILE="$CLOCK"
write_config "job_download_timeout 60s" "job_update_timeout 30s" \
  "job_reboot_timeout 30s"
fotad_start
keep_coap_ports "job_download_timeout 60s" "job_update_timeout 30s" \
  "job_reboot_timeout 30s"
DB="$WORK/state/fotad.db"

APP2=$(package application 2.0.0)
APP3=$(package application 3.0.0)
[ -n "$APP2" ] && [ -n "$APP3" ]
ok $? "packages application 2.0.0 and 3.0.0"

# Long lifetimes: moving the clock must not expire the registrations.
sim -n 100 -e 'k-%03d' -c application=1.0.0 -l 86400 -R 200/s
sim -n 10 -e 'w-%02d' -c application=1.0.0 -l 86400
wait_for 60 at_least 110 application 1.0.0
ok $? "110 devices registered"

# A window opening two hours from now (UTC, every day, one hour).
HOUR=$(( ($(date -u +%s) / 3600 + 2) % 24 ))
START=$(printf '%02d:00' "$HOUR")
NOW_S=$(date -u +%s)
END_AT=$(date -u -d "@$((NOW_S + 3 * 3600))" +%Y-%m-%dT%H:%M:%SZ)
START_E=$(printf '%02d:00' $(((HOUR + 3) % 24)))
W=$(create "{\"packages\":[$APP2],\"targets\":{\"endpoints\":[\"w-00\",\"w-01\",\"w-02\",\"w-03\",\"w-04\"]},\"schedule\":{\"windows\":[{\"start\":\"$START\",\"duration\":\"1h\"}]},\"verification\":{\"window\":0}}")
action "$W" start >/dev/null
sleep 3
V=$(rollout "$W")
echo "$V" | jt '.state == "running" and .schedule.window_open == false and
  .totals.pending == 5 and .totals.active == 0 and .totals.succeeded == 0'
ok $? "outside its window ($START UTC) no job starts ($(echo "$V" | jq -c .schedule))"
# An end time: the rollout expires when it passes with devices left (its
# window opens three hours after the first one, after its end time).
E=$(create "{\"packages\":[$APP2],\"targets\":{\"endpoints\":[\"w-05\",\"w-06\",\"w-07\"]},\"schedule\":{\"end_at\":\"$END_AT\",\"windows\":[{\"start\":\"$START_E\",\"duration\":\"1h\"}]}}")
action "$E" start >/dev/null
# Two hours and ten minutes later, by fotad's clock: inside the window.
OFFSET=$(( (HOUR * 3600 - NOW_S % 86400 + 86400) % 86400 + 600 ))
echo "$OFFSET" >"$CLOCK"
wait_for 60 state_is "$W" completed
ok $? "the clock moves into the window: the rollout runs and completes"
rollout "$W" | jt '.totals.succeeded == 5'
ok $? "its 5 devices updated"
V=$(rollout "$E")
echo "$V" | jt '.state == "running" and .totals.succeeded == 0 and
  .totals.active == 0 and .schedule.window_open == false'
ok $? "the other rollout, whose window is still closed, starts nothing"
# Past the end time: E expires, nothing updated.
echo $((5 * 3600 + 600)) >"$CLOCK"
wait_for 30 state_is "$E" expired
V=$(rollout "$E")
echo "$V" | jt '.totals.succeeded == 0 and .totals.skipped == 3'
ok $? "past its end time the rollout expires; its devices skipped ($(echo "$V" | jq -c '{reason, totals}'))"
jobs "$E" | jt 'all(.jobs[]; .reason == "rollout_expired")'
ok $? "each skipped device says why"
echo 0 >"$CLOCK"
sleep 1

# kill -9 in the middle of a rollout, twice.
K=$(create "{\"packages\":[$APP3],\"targets\":{\"filter\":\"application < 3.0\"},\"stages\":[\"20%\",\"100%\"],\"pace\":{\"max_concurrent\":8},\"verification\":{\"window\":\"1s\"}}")
[ -n "$K" ] || bail "rollout not created"
action "$K" start >/dev/null
MEMBERS=$(field "$K" .members)
[ "$MEMBERS" = 110 ]
ok $? "the rollout has 110 members ($MEMBERS)"
for n in 15 60; do
  wait_for 120 sh -c "[ \$(\"$REAL_CURL\" -sS -H 'Authorization: Bearer $FOTAD_TOKEN' $BASE/api/v1/rollouts/$K | jq .totals.succeeded) -ge $n ]"
  kill -KILL "$FOTAD_PID"
  wait "$FOTAD_PID" 2>/dev/null
  FOTAD_PID=
  ok 0 "fotad killed with SIGKILL after $n or more devices succeeded"
  fotad_start
  state_is "$K" running
  ok $? "after the restart the rollout is running"
done
wait_for 240 state_is "$K" completed
ok $? "the rollout completed after two kills"
V=$(rollout "$K")
echo "$V" | jt '.totals.succeeded == 110 and .totals.failed == 0'
ok $? "110 succeeded, none failed ($(echo "$V" | jq -c .totals))"
[ "$(version_count application 3.0.0)" = 110 ]
ok $? "110 devices run application 3.0.0"
# No job started twice: each device succeeded exactly once, and a job of
# attempt n > 0 only follows a failed attempt n - 1 (a retry, e.g. of a
# download cut by the kill).
N=$(sqlite3 "$DB" "SELECT count(DISTINCT device_id) FROM jobs WHERE rollout_id = $K AND state = 'succeeded'")
D=$(sqlite3 "$DB" "SELECT count(*) FROM (SELECT device_id FROM jobs WHERE rollout_id = $K AND state = 'succeeded' GROUP BY device_id HAVING count(*) > 1)")
R=$(sqlite3 "$DB" "SELECT count(*) FROM jobs a WHERE a.rollout_id = $K AND a.attempt > 0 AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.rollout_id = $K AND b.device_id = a.device_id AND b.attempt = a.attempt - 1 AND b.state IN ('failed', 'timed-out'))")
[ "$N" = 110 ] && [ "$D" = 0 ] && [ "$R" = 0 ]
ok $? "each device succeeded once ($N), none twice ($D), no attempt without a failed one before it ($R)"
diag "jobs that did not succeed (retried): $(sqlite3 "$DB" "SELECT d.endpoint || ' ' || j.attempt || ' ' || j.failure_class FROM jobs j JOIN devices d ON d.id = j.device_id WHERE rollout_id = $K AND state <> 'succeeded'" | tr '\n' ',')"
grep -c "rollout.* resumed" "$FOTAD_LOG" | grep -qx 2
ok $? "the log says the rollout resumed twice"

stop_sims
check "no sanitizer report" log_clean
done_testing
