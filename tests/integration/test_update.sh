#!/bin/sh
# Single-device update jobs with fotad-sim devices and packages uploaded
# through the API: one component over CoAP, several at once (linked
# instances), object 5, HTTP download, push delivery, a queue-mode device,
# every simulator fault that maps to a failure class, cancel, the API's
# refusals, and a restart of fotad in the middle of a download.
. "$(dirname "$0")/lib.sh"

[ -x "$FOTAD_SIM" ] || bail "fotad-sim not built"

# shellcheck disable=SC2034 # read by lib.sh
FOTAD_LOG_LEVEL=info
# config WRITER: the short time-outs of this test, for write_config or
# keep_coap_ports.
config() {
  "$1" "job_download_timeout 20s" "job_update_timeout 10s" \
    "job_reboot_timeout 5s" "queue_awake_window 1s"
}
config write_config
fotad_start

# Every simulator of this test, so that the trap ends them all.
SIMS=
sim() {
  sim_start --package-version 2.0 --reboot-time 1 -d 150 "$@"
  SIMS="$SIMS $SIM_PID"
}
stop_sims() {
  for p in $SIMS; do kill -KILL "$p" 2>/dev/null; done
  SIM_PID=
}
trap 'stop_sims; cleanup' EXIT

body() { echo "$1" | sed '$d'; }
status() { echo "$1" | tail -n 1; }

# upload COMPONENT VERSION SIZE: prints the new package's id.
upload() {
  head -c "$3" /dev/urandom >"$WORK/$1-$2.bin"
  "$CURL" -sS -m 20 -T "$WORK/$1-$2.bin" \
    "$BASE/api/v1/packages?component=$1&version=$2" |
    sed -n 's/^{"id":\([0-9]*\),.*/\1/p'
}

# update EP JSON: creates a job; body and status as http() prints them.
update() {
  http POST "/api/v1/devices/$1/updates" -H 'Content-Type: application/json' \
    -d "$2"
}
job_id() { body "$1" | sed -n 's/^{"id":\([0-9]*\),.*/\1/p'; }
job() { "$CURL" -sS -m 10 "$BASE/api/v1/jobs/$1"; }
# The job's own state: the first "state" before its components.
job_state() {
  job "$1" | sed 's/"components".*//' | grep -o '"state":"[a-z-]*"' |
    cut -d'"' -f4
}
job_is() { [ "$(job_state "$1")" = "$2" ]; }
job_done() {
  case $(job_state "$1") in
  succeeded | failed | timed-out | cancelled) return 0 ;;
  esac
  return 1
}
# components_known EP [N]: component tracking has read N components.
components_known() {
  n=$("$CURL" -sS -m 5 "$BASE/api/v1/devices/$1/components" |
    grep -o '"path":"/' | wc -l)
  [ "$n" -ge "${2:-1}" ]
}
component() {
  "$CURL" -sS -m 5 "$BASE/api/v1/devices/$1/components" |
    grep -o "\"path\":\"$2\"[^}]*"
}

APP=$(upload application 2.0 8192)
MODEM=$(upload modem 2.0 8192)
BOOT=$(upload bootloader 2.0 4096)
[ -n "$APP" ] && [ -n "$MODEM" ] && [ -n "$BOOT" ]
ok $? "packages uploaded through the API (application $APP, modem $MODEM)"

# The fleet: one simulator per kind of device, all at once.
sim -n 1 -e 'ok-%d' -c application=1.0,modem=2.1
sim -n 1 -e 'multi-%d' -c application=1.0,modem=2.1
sim -n 1 -e 'fw5-%d' --object5 --no-afu
sim -n 1 -e 'http-%d' --protocols 2
sim -n 1 -e 'push-%d' --delivery push
sim -n 1 -e 'q-%d' -b UQ --awake-time 2 -l 8
sim -n 1 -e 'slow-%d' --fault slow-download:slow-0 --slow-delay 200 \
  --block-size 256
# A device with a PSK registers over DTLS and downloads over coaps.
PSK=00112233445566778899aabbccddeeff
out=$(http POST /api/v1/credentials -H 'Content-Type: application/json' \
  -d "{\"endpoint\":\"dtls-0\",\"type\":\"psk\",\"identity\":\"dtls-0\",\"key\":\"$PSK\"}")
[ "$(status "$out")" = 201 ] || bail "PSK credential not created: $out"
"$FOTAD_SIM" -s "coaps://127.0.0.1:$COAPS_PORT" -n 1 -e 'dtls-%d' \
  --psk-key-pattern "$PSK" --package-version 2.0 --reboot-time 1 -d 150 \
  >>"$WORK/sim.log" 2>&1 &
SIMS="$SIMS $!"
sim -n 7 -e 'f-%d' --fault lost-download:f-0 --fault integrity:f-1 \
  --fault install-fail:f-2 --fault rollback:f-3 --fault no-return:f-4 \
  --fault conflict:f-5 --fault dependency:f-6 -c application=1.0,modem=2.1
# Faults a job must see through (lost notifications: its reads find the
# states; NAT rebinding: the device's new port) or classify (type refused).
sim -n 3 -e 'g-%d' --fault unsupported:g-0 --fault lost-notify:g-1 \
  --fault nat-rebind:g-2
for ep in ok-0 multi-0 fw5-0 http-0 push-0 q-0 slow-0 dtls-0 f-0 f-1 f-2 \
  f-3 f-4 f-5 f-6 g-0 g-1 g-2; do
  wait_for 20 components_known "$ep" || bail "$ep: components not read"
done
ok 0 "18 simulated devices registered and their components read"

# Create every job first; they run side by side.
out=$(update ok-0 "{\"package\":$APP}")
[ "$(status "$out")" = 201 ] && body "$out" | grep -q '"state":"queued"'
ok $? "POST updates: 201 with the job, queued"
J_OK=$(job_id "$out")
out=$(update multi-0 "{\"packages\":[$APP,$MODEM]}")
J_MULTI=$(job_id "$out")
J_FW5=$(job_id "$(update fw5-0 "{\"package\":$APP}")")
J_HTTP=$(job_id "$(update http-0 "{\"package\":$APP}")")
J_PUSH=$(job_id "$(update push-0 "{\"package\":$APP}")")
J_Q=$(job_id "$(update q-0 "{\"package\":$APP}")")
J_DTLS=$(job_id "$(update dtls-0 "{\"package\":$APP}")")
J_SLOW=$(job_id "$(update slow-0 "{\"package\":$APP}")")
mk() { job_id "$(update "$1" "{\"package\":$APP}")"; }
J_F0=$(mk f-0)
J_F1=$(mk f-1)
J_F2=$(mk f-2)
J_F3=$(mk f-3)
J_F4=$(mk f-4)
J_F5=$(mk f-5)
J_F6=$(mk f-6)
J_G0=$(mk g-0)
J_G1=$(mk g-1)
J_G2=$(mk g-2)
[ -n "$J_OK" ] && [ -n "$J_MULTI" ] && [ -n "$J_FW5" ] && [ -n "$J_HTTP" ] &&
  [ -n "$J_PUSH" ] && [ -n "$J_Q" ] && [ -n "$J_SLOW" ] && [ -n "$J_F6" ]
ok $? "a job for each device"

# The API's refusals.
out=$(update ok-0 "{\"package\":$APP}")
[ "$(status "$out")" = 409 ] && body "$out" | grep -q '"active_job"'
ok $? "a second job for a device with an active one: 409 active_job"
out=$(update nosuch "{\"package\":$APP}")
[ "$(status "$out")" = 404 ] && body "$out" | grep -q '"unknown_device"'
ok $? "an unknown device: 404"
out=$(update ok-0 '{"packages":[]}')
[ "$(status "$out")" = 400 ] && body "$out" | grep -q 'packages'
ok $? "an empty package list: 400 naming the field"
out=$(update ok-0 "{\"package\":$APP,\"packages\":[$APP]}")
[ "$(status "$out")" = 400 ]
ok $? "package and packages together: 400"
out=$(update ok-0 '{"package":1,"colour":"red"}')
[ "$(status "$out")" = 400 ] && body "$out" | grep -q 'colour'
ok $? "an unknown field: 400"
out=$(http GET /api/v1/jobs/999999)
[ "$(status "$out")" = 404 ]
ok $? "GET of an unknown job: 404"

# Cancel while the slow device downloads.
wait_for 20 job_is "$J_SLOW" downloading
ok $? "slow-0 is downloading"
j=$(job "$J_SLOW")
echo "$j" | grep -q '"progress":{"blocks":[1-9]'
ok $? "the job shows the blocks served so far"
out=$(http POST "/api/v1/jobs/$J_SLOW/cancel")
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"state":"cancelled"'
ok $? "cancel while downloading: 200, cancelled"
wait_for 10 sh -c "'$REAL_CURL' -sS -H 'Authorization: Bearer $FOTAD_TOKEN' '$BASE/api/v1/devices/slow-0/components' | grep -q '\"path\":\"/33629/0\"[^}]*\"state\":0,\"result\":10'"
ok $? "the device was told: Idle with Update Result 10 (Cancel)"
out=$(http POST "/api/v1/jobs/$J_SLOW/cancel")
[ "$(status "$out")" = 409 ] && body "$out" | grep -q '"finished"'
ok $? "cancelling a finished job: 409"
# f-4 executes Update and is never heard of again: it stays updating.
wait_for 20 job_is "$J_F4" updating
out=$(http POST "/api/v1/jobs/$J_F4/cancel")
[ "$(status "$out")" = 409 ] && body "$out" | grep -q '"installing"'
ok $? "cancelling once Execute Update went out: 409 installing"

for j in $J_OK $J_MULTI $J_FW5 $J_HTTP $J_PUSH $J_Q $J_DTLS $J_F0 $J_F1 $J_F2 \
  $J_F3 $J_F4 $J_F5 $J_F6; do
  wait_for 40 job_done "$j" || diag "job $j still $(job_state "$j")"
done

check_job() { # ID STATE CLASS DESCRIPTION
  j=$(job "$1")
  st=$(echo "$j" | sed 's/"components".*//' | grep -o '"state":"[a-z-]*"')
  [ "$st" = "\"state\":\"$2\"" ] &&
    { [ -z "$3" ] || echo "$j" | grep -q "\"failure_class\":\"$3\""; }
  rc=$?
  ok $rc "$4"
  [ $rc -eq 0 ] || diag "$j"
}

check_job "$J_OK" succeeded "" "one component over CoAP: succeeded"
j=$(job "$J_OK")
echo "$j" | grep -q '"delivery":"coap"' &&
  echo "$j" | grep -q '"uri":"coap://127.0.0.1:'"$COAP_PORT"'/fw/' &&
  echo "$j" | grep -q '"progress":{"blocks":8,"bytes":8192,"offset":8192,"size":8192,"percent":100'
ok $? "coap URI on fotad's port; 8 blocks of 1 KiB served"
for step in '"to":"uri-written"' '"to":"downloading"' '"to":"downloaded"' \
  '"action":"execute","path":"/33629/0/2","args":"0"' '"to":"updating"' \
  '"to":"verifying"' '"to":"succeeded"'; do
  echo "$j" | grep -q "$step" || { diag "missing $step"; false; } || break
done
ok $? "its timeline holds every step and the Execute with argument 0"
component ok-0 /33629/0 | grep -q '"current_version":"2.0"'
ok $? "ok-0 runs application 2.0"
tl=$("$CURL" -sS -m 10 "$BASE/api/v1/devices/ok-0/timeline")
echo "$tl" | grep -q "\"type\":\"job\",\"job_id\":$J_OK"
ok $? "job events are in the device's timeline"

check_job "$J_MULTI" succeeded "" "application + modem together: succeeded"
j=$(job "$J_MULTI")
echo "$j" | grep -q "\"args\":\"0='</33629/1>'\""
ok $? "one Execute on /33629/0 listing /33629/1"
component multi-0 /33629/1 | grep -q '"current_version":"2.0"' &&
  component multi-0 /33629/0 | grep -q '"current_version":"2.0"'
ok $? "multi-0 runs application 2.0 and modem 2.0"

check_job "$J_FW5" succeeded "" "object 5 device: succeeded"
job "$J_FW5" | grep -q '"path":"/5/0"' &&
  job "$J_FW5" | grep -q '"path":"/5/0/2","args":null'
ok $? "object 5: /5/0 updated, Execute without argument"
check_job "$J_HTTP" succeeded "" "HTTP download: succeeded"
job "$J_HTTP" | grep -q '"uri":"http://127.0.0.1:'"$HTTP_PORT"'/fw/'
ok $? "HTTP URI on the API's port"
check_job "$J_PUSH" succeeded "" "push delivery (Block1 to /0): succeeded"
job "$J_PUSH" | grep -q '"delivery":"push"'
ok $? "the push-only device got a push"
check_job "$J_Q" succeeded "" "queue-mode device: succeeded"
check_job "$J_DTLS" succeeded "" "DTLS (PSK) device: succeeded"
job "$J_DTLS" | grep -q '"uri":"coaps://127.0.0.1:'"$COAPS_PORT"'/fw/' &&
  job "$J_DTLS" | grep -q '"progress":{"blocks":8,'
ok $? "it downloaded over coaps from fotad's CoAPS port, progress shown"

check_job "$J_F0" failed connection_lost "lost download: connection_lost"
job "$J_F0" | grep -q '"update_result":4'
ok $? "with Update Result 4"
check_job "$J_F1" failed integrity "integrity failure: integrity (5)"
check_job "$J_F2" failed install_failed "install failure: install_failed (8)"
check_job "$J_F3" failed rollback "back with the old version: rollback"
check_job "$J_F4" timed-out never_came_back \
  "never back after Update: timed-out never_came_back"
check_job "$J_F5" failed conflict "conflict: conflict (12)"
check_job "$J_F6" failed dependency "dependency: dependency (13)"
check_job "$J_G0" failed unsupported_package \
  "package type refused: unsupported_package (6)"
check_job "$J_G1" succeeded "" "lost notifications: succeeded through reads"
check_job "$J_G2" succeeded "" "NAT rebinding mid-download: succeeded"

out=$(http GET "/api/v1/devices/f-3/jobs")
[ "$(status "$out")" = 200 ] && body "$out" | grep -q "\"id\":$J_F3"
ok $? "a device's jobs are listed"
out=$(http GET "/api/v1/devices/f-3/jobs?limit=1&cursor=$J_F3")
[ "$(status "$out")" = 200 ] && body "$out" | grep -q '"jobs":\[\]'
ok $? "and paginated by cursor"
out=$(update f-3 "{\"package\":$APP}")
[ "$(status "$out")" = 201 ]
ok $? "a finished job leaves room for a new one"
J_F3B=$(job_id "$out")
wait_for 20 job_done "$J_F3B"
check_job "$J_F3B" failed rollback "which runs its course (rollback again)"
out=$(update ok-0 '{"package":99999}')
[ "$(status "$out")" = 422 ] && body "$out" | grep -q '"unknown_package"'
ok $? "an unknown package: 422 unknown_package"
out=$(update ok-0 "{\"package\":$APP}")
[ "$(status "$out")" = 422 ] && body "$out" | grep -q 'already runs'
ok $? "installing the running version again needs force"
out=$(update multi-0 "{\"package\":$BOOT}")
[ "$(status "$out")" = 422 ] && body "$out" | grep -q '"no_such_component"' &&
  body "$out" | grep -q "no component 'bootloader'" &&
  body "$out" | grep -q 'application, modem'
ok $? "a component the device lacks: 422, naming its components"

# Restart in the middle of a download: the device fetches a block every
# 3 s, fotad stops right after one and is back long before the next; the
# job resumes and completes.
RS=$(upload rsapp 2.0 2048)
sim -n 1 -e 'rs-%d' -c rsapp=1.0 --fault slow-download:rs-0 \
  --slow-delay 3000 -l 8
wait_for 20 components_known rs-0 || bail "rs-0: components not read"
J_RS=$(job_id "$(update rs-0 "{\"package\":$RS}")")
served() { job "$J_RS" | grep -q '"progress":{"blocks":[1-9]'; }
wait_for 20 served
ok $? "rs-0 is downloading (a block served)"
fotad_stop
ok "$FOTAD_STATUS" "SIGTERM mid-download: exit 0"
config keep_coap_ports
fotad_start
wait_for 40 job_done "$J_RS"
check_job "$J_RS" succeeded "" "after the restart the job completes"
grep -q 'active update job resumed' "$FOTAD_LOG"
ok $? "the restarted fotad resumed the job"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report in the log"
done_testing
