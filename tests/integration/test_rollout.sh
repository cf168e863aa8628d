#!/bin/sh
# Staged rollouts with fotad-sim devices: a dry run and its cohorts, a
# rollout of 200 devices in 3 stages that succeeds (devices already on
# the target version skipped and counted), the spec's refusals, pause,
# resume and abort, and dynamic membership by tag.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rollout_lib.sh"

# shellcheck disable=SC2034 # read by lib.sh
FOTAD_LOG_LEVEL=info
write_config "job_download_timeout 30s" "job_update_timeout 20s" \
  "job_reboot_timeout 20s"
fotad_start

APP2=$(package application 2.0.0)
APP3=$(package application 3.0.0)
[ -n "$APP2" ] && [ "$APP2" != null ] && [ -n "$APP3" ]
ok $? "MCUboot packages application 2.0.0 ($APP2) and 3.0.0 ($APP3)"

sim -n 200 -e 'ok-%03d' -c application=1.0.0 -R 400/s
SIM_OK=$SIM_PID
sim -n 5 -e 'cur-%d' -c application=2.0.0
wait_for 60 at_least 200 application 1.0.0 &&
  wait_for 30 at_least 5 application 2.0.0
ok $? "205 devices registered and their components read"

SPEC="{\"name\":\"app 2.0\",\"packages\":[$APP2],\"stages\":[\"10%\",\"50%\",\"100%\"],\"seed\":42,\"gates\":{\"success_ratio\":0.95},\"pace\":{\"max_concurrent\":60},\"verification\":{\"window\":0},\"targets\":{\"filter\":\"application >= 1.0\"}}"

# Dry run: membership of every cohort, nothing stored.
out=$(post /api/v1/rollouts/dry-run "$SPEC")
[ "$(status "$out")" = 200 ]
ok $? "POST /rollouts/dry-run: 200"
DRY=$(body "$out")
echo "$DRY" | jt '.members == 200 and .skipped == 5 and
  .skipped_by.up_to_date == 5 and .seed == 42 and
  ([.stages[].size] == [20, 80, 100]) and
  ([.stages[].devices | length] == [20, 80, 100])' >/dev/null
ok $? "dry run: 200 members in cohorts of 20, 80 and 100; 5 up to date"
echo "$DRY" | jq -r '.stages[0].devices[]' | sort >"$WORK/dry1"
body "$(post /api/v1/rollouts/dry-run "$SPEC")" |
  jq -r '.stages[0].devices[]' | sort >"$WORK/dry1b"
cmp -s "$WORK/dry1" "$WORK/dry1b" && [ "$(wc -l <"$WORK/dry1")" = 20 ]
ok $? "the same seed gives the same first cohort"
[ "$(get /api/v1/rollouts | jq '.rollouts | length')" = 0 ]
ok $? "a dry run stores no rollout"

# Refusals, each naming its field.
refused() {
  out=$(post /api/v1/rollouts "$1")
  [ "$(status "$out")" = "$2" ] &&
    body "$out" | grep -q "$3"
  ok $? "refused ($2, $3): $1"
}
refused '{"packages":[]}' 400 '"field":"packages"'
refused "{\"packages\":[$APP2],\"stages\":[\"50%\",\"10%\"]}" 400 \
  '"field":"stages\[1\]"'
refused "{\"packages\":[$APP2],\"targets\":{\"filter\":\"application ~ 3\"}}" \
  400 '"field":"targets.filter\[0\]"'
refused "{\"packages\":[$APP2],\"retries\":{\"on\":[\"integrity\"]}}" 400 \
  'never retried'
refused "{\"packages\":[$APP2],\"schedule\":{\"windows\":[{\"start\":\"25:00\",\"duration\":\"1h\"}]}}" \
  400 '"field":"schedule.windows\[0\].start"'
refused "{\"packages\":[$APP2],\"schedule\":{\"windows\":[{\"start\":\"02:00\",\"duration\":\"1h\",\"time_zone\":\"Mars/Olympus\"}]}}" \
  400 'time_zone'
refused "{\"packages\":[$APP2],\"gates\":{\"sucess_ratio\":1}}" 400 \
  '"field":"gates.sucess_ratio"'
refused '{"packages":[999]}' 422 unknown_package

# The rollout: created, its cohorts are the dry run's, then started.
R1=$(create "$SPEC")
[ -n "$R1" ] && state_is "$R1" created
ok $? "POST /rollouts: 201, state created"
get "/api/v1/rollouts/$R1/cohorts" | jq -r '.stages[0].devices[]' | sort \
  >"$WORK/c1"
cmp -s "$WORK/dry1" "$WORK/c1"
ok $? "a created rollout's cohorts are its dry run's"
out=$(action "$R1" start)
[ "$(status "$out")" = 200 ] && body "$out" | jt '.state == "running" and
  .current_stage == 1 and .members == 200 and .totals.skipped == 5' \
  >/dev/null
ok $? "start: running, stage 1, 200 members, 5 skipped"
[ "$(status "$(action "$R1" start)")" = 409 ]
ok $? "start again: 409"

wait_for 180 state_is "$R1" completed
ok $? "the rollout completed"
V=$(rollout "$R1")
echo "$V" | jt '.totals.succeeded == 200 and .totals.failed == 0 and
  .totals.skipped == 5 and .current_stage == 3 and
  ([.stages[].members] == [20, 80, 100]) and
  ([.stages[].succeeded] == [20, 80, 100])' >/dev/null
ok $? "200 succeeded over stages of 20, 80 and 100; 5 skipped"
[ "$(version_count application 2.0.0)" = 205 ]
ok $? "205 devices run application 2.0.0"
get "/api/v1/rollouts/$R1/cohorts" | jq -r '.stages[0].devices[]' | sort \
  >"$WORK/c1after"
cmp -s "$WORK/dry1" "$WORK/c1after"
ok $? "stage 1 held exactly the dry run's devices"
# Stages ran in order: no device of stage 2 started before stage 1 ended.
TL=$(get "/api/v1/rollouts/$R1/timeline")
echo "$TL" | jt '[.events[].data | select(.event == "stage_started") |
  .stage] == [2, 3]' >/dev/null &&
  echo "$TL" | jt '[.events[].data | select(.event == "stage_done") |
  .stage] == [1, 2, 3]' >/dev/null
ok $? "the timeline shows stages 1, 2, 3 done and 2, 3 started"
S1_DONE=$(echo "$TL" | jq -r '[.events[] | select(.data.event == "stage_done")][0].id')
J=$(jobs "$R1" "&stage=2&timeline=true")
FIRST2=$(echo "$J" | jq '[.jobs[].timeline[0].id] | min')
[ "$FIRST2" -gt "$S1_DONE" ]
ok $? "every stage 2 job began after stage 1 was done"
echo "$J" | jt '(.jobs | length) == 80 and
  all(.jobs[]; .state == "succeeded" and .job_state == "succeeded" and
  .attempts == 1 and (.timeline | length) > 3)' >/dev/null
ok $? "jobs of stage 2: 80, succeeded, each with its timeline"
[ "$(members_in "$R1" skipped)" = 5 ] &&
  jobs "$R1" "&state=skipped" | jt 'all(.jobs[]; .reason == "up_to_date")' \
    >/dev/null
ok $? "jobs?state=skipped: the 5 devices already on 2.0.0"
[ "$(get "/api/v1/rollouts?state=completed" | jq '.rollouts | length')" = 1 ]
ok $? "GET /rollouts?state=completed lists it"
for a in pause resume start; do
  [ "$(status "$(action "$R1" $a)")" = 409 ] || break
done
ok $? "a completed rollout cannot be paused, resumed or started"
[ "$(status "$(action "$R1" explode)")" = 404 ] &&
  [ "$(status "$(action 9999 pause)")" = 404 ]
ok $? "unknown action or rollout: 404"

# Pause, resume, abort: one start per 2 s, so the rollout is slow enough
# to watch.
R2=$(create "{\"packages\":[$APP3],\"targets\":{\"filter\":\"application < 3.0\"},\"pace\":{\"max_starts_per_minute\":30},\"verification\":{\"window\":0}}")
action "$R2" start >/dev/null
wait_for 20 total_is "$R2" succeeded 1
ok $? "a paced rollout updates its first device"
out=$(action "$R2" pause)
[ "$(status "$out")" = 200 ] && body "$out" | jt '.state == "paused" and
  .reason == "paused by the operator"' >/dev/null
ok $? "pause: paused, with the reason"
sleep 1
N=$(field "$R2" '.totals.succeeded + .totals.active')
sleep 5
[ "$(field "$R2" '.totals.succeeded + .totals.active')" = "$N" ]
ok $? "no job starts while paused ($N started)"
[ "$(status "$(action "$R2" resume)")" = 200 ] && state_is "$R2" running
ok $? "resume: running"
wait_for 10 total_is "$R2" succeeded $((N + 1))
ok $? "jobs start again after resume"
out=$(action "$R2" abort)
[ "$(status "$out")" = 200 ] && body "$out" | jt '.state == "aborted" and
  .totals.pending == 0 and .totals.cancelled > 150' >/dev/null
ok $? "abort: aborted, the devices not started cancelled"
wait_for 30 settled "$R2"
ok $? "the aborted rollout's jobs under way ended"
[ "$(status "$(action "$R2" resume)")" = 409 ]
ok $? "an aborted rollout cannot resume"
get "/api/v1/audit?action=rollout.abort" | jt '.entries | length == 1' \
  >/dev/null
ok $? "the abort is in the audit log"

# A start time an hour ahead: started, but no job before it.
LATER=$(date -u -d "@$(($(date -u +%s) + 3600))" +%Y-%m-%dT%H:%M:%SZ)
R5=$(create "{\"packages\":[$APP3],\"targets\":{\"filter\":\"application < 3.0\"},\"schedule\":{\"start_at\":\"$LATER\"}}")
action "$R5" start >/dev/null
sleep 2
rollout "$R5" | jt '.state == "running" and .schedule.before_start and
  .totals.active == 0 and .totals.succeeded == 0 and .totals.pending > 0'
ok $? "before its start time a started rollout starts no job"
action "$R5" abort >/dev/null

# Dynamic membership: devices tagged after the start join the stage in
# progress.
R3=$(create "{\"packages\":[$APP3],\"targets\":{\"tags\":[\"late\"]},\"dynamic\":true,\"verification\":{\"window\":0}}")
action "$R3" start >/dev/null
state_is "$R3" running && [ "$(field "$R3" .members)" = 0 ]
ok $? "a dynamic rollout with no device yet keeps running"
sim -n 3 -e 'late-%d' -c application=1.0.0
wait_for 30 at_least 3 application 1.0.0
for i in 0 1 2; do
  http PUT "/api/v1/devices/late-$i/tags/late" >/dev/null
done
wait_for 60 total_is "$R3" succeeded 3
ok $? "3 devices tagged after the start joined and were updated"
get "/api/v1/rollouts/$R3/timeline" |
  jt 'any(.events[]; .data.event == "joined")' >/dev/null
ok $? "the timeline says they joined"
state_is "$R3" running
ok $? "the dynamic rollout stays running for more devices"
[ "$(status "$(action "$R3" abort)")" = 200 ]
ok $? "and is aborted by the operator"

# The package of the finished rollouts may go; its jobs stay readable.
JOB=$(jobs "$R1" "&state=succeeded" | jq -r '.jobs[0].job_id')
out=$(http DELETE "/api/v1/packages/$APP2")
[ "$(status "$out")" = 200 ] &&
  get "/api/v1/jobs/$JOB" | jt '.state == "succeeded" and
    .components[0].package == null and .components[0].to_version == null' &&
  rollout "$R1" | jt ".spec.packages == [$APP2] and .totals.succeeded == 200"
ok $? "a package used only by finished rollouts and jobs can be deleted ($(body "$out"))"
R4=$(create "{\"packages\":[$APP3],\"targets\":{\"endpoints\":[\"nobody\"]}}")
out=$(http DELETE "/api/v1/packages/$APP3")
[ "$(status "$out")" = 409 ] && body "$out" | grep -q "1 live rollout"
ok $? "one a created rollout uses cannot: 409"
action "$R4" abort >/dev/null

check "the metrics count rollouts by state" \
  sh -c "\"$REAL_CURL\" -sS -H 'Authorization: Bearer $FOTAD_TOKEN' $BASE/metrics | grep -q 'fotad_rollouts{state=\"completed\"} 1'"
kill -TERM "$SIM_OK" 2>/dev/null
check "no sanitizer report" log_clean
done_testing
