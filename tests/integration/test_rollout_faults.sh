#!/bin/sh
# Rollouts that go wrong, with fotad-sim's faults: the failure gate
# pausing a rollout after its first stage when 20% of devices fail (and
# counting from the operator's resume), a gate that aborts, rollback and
# reboot-loop detection, devices that never come back (time-outs),
# retries of connection-lost failures with backoff (and their limit),
# and a multi-component release installed atomically where some devices
# report a dependency error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rollout_lib.sh"

# shellcheck disable=SC2034 # read by lib.sh
FOTAD_LOG_LEVEL=info
write_config "job_download_timeout 30s" "job_update_timeout 20s" \
  "job_reboot_timeout 20s"
fotad_start

APP2=$(package application 2.0.0)
MODEM2=$(package modem 2.0.0)
[ -n "$APP2" ] && [ -n "$MODEM2" ]
ok $? "packages application 2.0.0 and modem 2.0.0"

# eps PREFIX FIRST LAST: a JSON array of endpoints PREFIX-FIRST..LAST.
eps() {
  i=$2
  printf '['
  while [ "$i" -le "$3" ]; do
    [ "$i" -gt "$2" ] && printf ','
    printf '"%s-%02d"' "$1" "$i"
    i=$((i + 1))
  done
  printf ']'
}

# Gate fleet: 50 devices, every fifth (g-00, g-05...) fails to install:
# 20%. Canaries g-00..g-04 make stage 1 (10%: 5 devices) hold one of them.
FAILING=g-00
for i in 05 10 15 20 25 30 35 40 45; do FAILING="$FAILING,g-$i"; done
sim -n 50 -e 'g-%02d' -c application=1.0.0 --fault "install-fail:$FAILING"
# Other faults, one group each.
sim -n 4 -e 'rb-%02d' -c application=1.0.0 --fault rollback:rb-00,rb-01 \
  --fault reboot-loop:rb-02,rb-03
sim -n 3 -e 'nr-%02d' -c application=1.0.0 --fault no-return:nr-00,nr-01
sim -n 4 -e 'rt-%02d' -c application=1.0.0 \
  --fault flaky-download:rt-00,rt-01 --fault lost-download:rt-02
sim -n 6 -e 'mc-%02d' -c application=1.0.0,modem=1.0.0 \
  --fault dependency:mc-00,mc-01
sim -n 4 -e 'ab-%02d' -c application=1.0.0 --fault integrity:ab-00
wait_for 60 at_least 71 application 1.0.0 && wait_for 30 at_least 6 modem 1.0.0
ok $? "71 devices registered and their components read"

# The failure gate pauses after stage 1.
G=$(create "{\"packages\":[$APP2],\"targets\":{\"endpoints\":$(eps g 0 49)},\"canaries\":[\"g-00\",\"g-01\",\"g-02\",\"g-03\",\"g-04\"],\"stages\":[\"10%\",\"50%\",\"100%\"],\"gates\":{\"success_ratio\":0.5,\"failure_ratio\":0.1,\"min_sample\":5},\"verification\":{\"window\":0}}")
action "$G" start >/dev/null
wait_for 60 state_is "$G" paused
ok $? "20% of devices fail: the failure gate pauses the rollout"
V=$(rollout "$G")
echo "$V" | jt '.current_stage == 1 and .totals.succeeded == 4 and
  .totals.failed == 1 and .totals.pending == 45 and
  .failures_by_class.install == 1 and (.reason | test("failure gate"))'
ok $? "after stage 1: 4 succeeded, 1 failed (install), 45 not started ($(echo "$V" | jq -c '{reason, totals}'))"
jobs "$G" "&state=failed" | jt '.jobs[0].endpoint == "g-00" and
  .jobs[0].failure_class == "install_failed" and
  .jobs[0].gate_class == "install" and .jobs[0].job_state == "failed"'
ok $? "the failed device is g-00, install_failed"
get "/api/v1/rollouts/$G/timeline" | jt 'any(.events[];
  .data.event == "gate" and (.data.reason | test("failure gate")))'
ok $? "the gate is in the rollout's timeline"
sleep 2
[ "$(field "$G" '.totals.active + .totals.succeeded + .totals.failed')" = 5 ]
ok $? "no stage 2 job starts while the gate holds it"
"$REAL_CURL" -sS -H "Authorization: Bearer $FOTAD_TOKEN" "$BASE/metrics" |
  grep -q '^fotad_rollout_gate_trips_total 1$'
ok $? "fotad_rollout_gate_trips_total counts it"
# Resume: the gate counts from here, and trips again on the new failures.
[ "$(status "$(action "$G" resume)")" = 200 ]
ok $? "resume after the gate"
wait_for 90 state_is "$G" paused
V=$(rollout "$G")
echo "$V" | jt '.gates.failure.baseline_failed == 1 and
  .gates.failure.baseline_finished == 5 and .totals.failed >= 2'
ok $? "the gate counted from the resume and paused again ($(echo "$V" | jq -c .gates.failure))"
[ "$(status "$(action "$G" abort)")" = 200 ]
ok $? "abort the gated rollout"

# A gate that aborts: one integrity failure is enough.
A=$(create "{\"packages\":[$APP2],\"targets\":{\"endpoints\":$(eps ab 0 3)},\"canaries\":[\"ab-00\"],\"stages\":[1,\"100%\"],\"gates\":{\"failure_count\":1,\"on_failure\":\"abort\",\"failure_classes\":[\"integrity\"]},\"verification\":{\"window\":0}}")
action "$A" start >/dev/null
wait_for 60 state_is "$A" aborted
V=$(rollout "$A")
echo "$V" | jt '.totals.failed == 1 and .totals.cancelled == 3 and
  .failures_by_class.integrity == 1 and (.reason | test("failure gate"))'
ok $? "an integrity failure aborts the rollout; the rest cancelled ($(echo "$V" | jq -c '{reason, totals}'))"
jobs "$A" "&state=failed" | jt '.jobs[0].failure_class == "integrity" and
  .jobs[0].attempts == 1'
ok $? "integrity failures are never retried"

# Rollback and reboot loops, with a verification window.
RB=$(create "{\"packages\":[$APP2],\"targets\":{\"endpoints\":$(eps rb 0 3)},\"verification\":{\"window\":\"8s\",\"max_reboots\":1},\"gates\":{\"success_ratio\":0}}")
action "$RB" start >/dev/null
wait_for 90 state_is "$RB" completed
J=$(jobs "$RB")
echo "$J" | jt '[.jobs[] | select(.endpoint == "rb-00" or .endpoint == "rb-01")] |
  all(.state == "failed" and .failure_class == "rollback" and
  .gate_class == "rollback")'
ok $? "devices back with the old version: failed, rollback"
echo "$J" | jt '[.jobs[] | select(.endpoint == "rb-02" or .endpoint == "rb-03")] |
  all(.state == "failed" and .failure_class == "reboot_loop" and
  .gate_class == "rollback")'
ok $? "devices that keep rebooting: failed, reboot_loop ($(echo "$J" | jq -c '[.jobs[] | {endpoint, state, failure_class}]'))"
rollout "$RB" | jt '.failures_by_class.rollback == 4'
ok $? "both count as rollbacks for the gates"

# Devices that never come back: the reboot time-out.
NR=$(create "{\"packages\":[$APP2],\"targets\":{\"endpoints\":$(eps nr 0 2)},\"timeouts\":{\"reboot\":\"4s\"},\"verification\":{\"window\":0},\"gates\":{\"success_ratio\":0}}")
action "$NR" start >/dev/null
wait_for 60 state_is "$NR" completed
J=$(jobs "$NR")
echo "$J" | jt '[.jobs[] | select(.state == "failed")] | length == 2 and
  all(.failure_class == "never_came_back" and .gate_class == "timeout" and
  .job_state == "timed-out")' &&
  echo "$J" | jt '[.jobs[] | select(.endpoint == "nr-02")][0].state == "succeeded"'
ok $? "never-returning devices time out (never_came_back); the third succeeds"

# Retries: connection lost once is retried and succeeds; always lost
# gives up after the maximum.
RT=$(create "{\"packages\":[$APP2],\"targets\":{\"endpoints\":$(eps rt 0 3)},\"retries\":{\"max\":2,\"backoff\":\"1s\"},\"verification\":{\"window\":0},\"gates\":{\"success_ratio\":0}}")
action "$RT" start >/dev/null
wait_for 90 state_is "$RT" completed
J=$(jobs "$RT" "&timeline=true")
echo "$J" | jt '[.jobs[] | select(.endpoint == "rt-00" or .endpoint == "rt-01")] |
  all(.state == "succeeded" and .attempts == 2)'
ok $? "a lost connection is retried: succeeded at the second attempt"
echo "$J" | jt '[.jobs[] | select(.endpoint == "rt-02")][0] |
  .state == "failed" and .attempts == 3 and
  .failure_class == "connection_lost" and .gate_class == "download"'
ok $? "always lost: failed after 1 + 2 retries"
echo "$J" | jt '[.jobs[] | select(.endpoint == "rt-03")][0] |
  .state == "succeeded" and .attempts == 1'
ok $? "a healthy device needs one attempt"
get "/api/v1/devices/rt-02/jobs" | jt '(.jobs | length) == 3 and
  ([.jobs[].attempt] | sort) == [0, 1, 2] and
  all(.jobs[]; .rollout_id != null and .failure_class == "connection_lost")'
ok $? "each attempt is a job of its own, numbered"

# A release of two components, installed together; two devices report a
# dependency error.
MC=$(create "{\"packages\":[$APP2,$MODEM2],\"targets\":{\"endpoints\":$(eps mc 0 5)},\"verification\":{\"window\":0},\"gates\":{\"success_ratio\":0}}")
action "$MC" start >/dev/null
wait_for 90 state_is "$MC" completed
J=$(jobs "$MC")
echo "$J" | jt '[.jobs[] | select(.state == "failed")] | length == 2 and
  all(.failure_class == "dependency" and .gate_class == "install")' &&
  rollout "$MC" | jt '.totals.succeeded == 4'
ok $? "multi-component: 4 succeeded, 2 failed with a dependency error"
JOB=$(echo "$J" | jq -r '[.jobs[] | select(.endpoint == "mc-03")][0].job_id')
get "/api/v1/jobs/$JOB" | jt '(.components | length) == 2 and
  all(.components[]; .state == "updated")'
ok $? "a successful device's job updated both components"
grep -q "Execute /33629/0/2 0='</33629/0>,</33629/1>'" "$FOTAD_LOG" ||
  grep -q "Execute /33629/[01]/2 0=" "$FOTAD_LOG"
ok $? "Update was executed once with the linked instances"
# Both components of the failed devices stay on the old versions.
get /api/v1/devices/mc-00/components | jt '[.components[].current_version] |
  all(. == "1.0.0")'
ok $? "a dependency error leaves both components on their old versions"

stop_sims
check "no sanitizer report" log_clean
done_testing
