#!/bin/sh
# A staged rollout at scale: N fotad-sim devices (default 10,000, one
# 33629 component each) updated by one rollout through the REST API, with
# one package (default 64 KiB) served by fotad over CoAP Block2 (1 KiB
# blocks), in stages (default 1%, 10%, 100%) with a success gate between
# them. Prints the total time from the start to the rollout's completion,
# updates per hour, the CoAP blocks served per second, fotad's CPU and
# peak RSS, and the simulator's CPU (to show which one is the limit).
# Figures only: nothing fails on a figure.
#
#   sh bench/bench_rollout.sh    (from a release build folder; FOTAD,
#                                 FOTAD_SIM, ROLL_COUNT, ROLL_SIZE,
#                                 ROLL_STAGES, ROLL_CONCURRENT,
#                                 ROLL_LIMIT override)
#
# Every process started here is stopped by its PID, at the latest in the
# trap.
set -u
: "${ROLL_COUNT:=10000}"
: "${ROLL_SIZE:=65536}"
: "${ROLL_STAGES:=\"1%\",\"10%\",\"100%\"}"
: "${ROLL_CONCURRENT:=2000}"
: "${ROLL_LIMIT:=900}"
: "${ROLL_RATE:=5000/s}"

NAME=rollout
. "$(dirname "$0")/bench_lib.sh"
fotad_start "api_rate_limit 0" "metrics_public yes" \
  "job_download_timeout 10m" "job_update_timeout 5m" "job_reboot_timeout 5m"
coap=$COAP_PORT
base=$BASE
auth=$AUTH

head -c "$ROLL_SIZE" /dev/urandom >"$WORK/app.bin"
pkg=$("$CURL" -sS -m 60 -H "$auth" -T "$WORK/app.bin" \
  "$base/api/v1/packages?component=application&version=2.0" |
  sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
[ -n "$pkg" ] || fail "the package upload failed"

"$FOTAD_SIM" -s "coap://127.0.0.1:$coap" -n "$ROLL_COUNT" -e 'roll-%05d' \
  --lwm2m 1.1 -l 3600 -c application=1.0 --package-version 2.0 \
  --reboot-time 1 --no-deregister -R "$ROLL_RATE" -d "$ROLL_LIMIT" \
  >"$WORK/sim.log" 2>&1 &
SIM_PID=$!

# All devices registered and their component read.
reg_start=$(now)
i=0
while :; do
  n=$("$CURL" -sS -m 10 -H "$auth" "$base/api/v1/components" |
    grep -o '"component":"application","version":"1.0","devices":[0-9]*' |
    sed 's/.*://')
  [ "${n:-0}" -ge "$ROLL_COUNT" ] && break
  i=$((i + 1))
  [ $i -le 6000 ] || fail "devices did not register (${n:-0})"
  sleep 0.1
done
reg_end=$(now)

spec="{\"name\":\"bench\",\"packages\":[$pkg],\"stages\":[$ROLL_STAGES],
  \"gates\":{\"success_ratio\":0.95},\"pace\":{\"max_concurrent\":$ROLL_CONCURRENT},
  \"verification\":{\"window\":0}}"
id=$("$CURL" -sS -m 60 -H "$auth" -X POST -d "$spec" "$base/api/v1/rollouts" |
  sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
[ -n "$id" ] || fail "the rollout was not created"
fotad_cpu0=$(cpu_s "$FOTAD_PID")
sim_cpu0=$(cpu_s "$SIM_PID")
start=$(now)
"$CURL" -sS -m 120 -H "$auth" -X POST "$base/api/v1/rollouts/$id/start" \
  >"$WORK/start.json" || fail "the rollout did not start"
started=$(now)

# Until the rollout ends (completed, paused by a gate, aborted). The
# simulator's CPU is read on the way, in case it stops first.
sim_cpu=$sim_cpu0
state=running
i=0
while :; do
  c=$(cpu_s "$SIM_PID")
  [ -n "$c" ] && sim_cpu=$c
  state=$("$CURL" -sS -m 10 -H "$auth" "$base/api/v1/rollouts/$id" |
    sed -n 's/^{"id":[0-9]*,"name":"bench","state":"\([a-z]*\)".*/\1/p')
  case $state in running | "") ;; *) break ;; esac
  i=$((i + 1))
  [ $i -le $((ROLL_LIMIT * 5)) ] || break
  sleep 0.2
done
end=$(now)
fotad_cpu=$(cpu_s "$FOTAD_PID")
c=$(cpu_s "$SIM_PID")
[ -n "$c" ] && sim_cpu=$c
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$FOTAD_PID/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$FOTAD_PID/status")
"$CURL" -sS -m 10 -H "$auth" "$base/api/v1/rollouts/$id" >"$WORK/final.json"
ok=$(sed -n 's/.*"totals":{[^}]*"succeeded":\([0-9]*\).*/\1/p' "$WORK/final.json")
failed=$(sed -n 's/.*"totals":{[^}]*"failed":\([0-9]*\).*/\1/p' "$WORK/final.json")

# The blocks served and the download window, from the stored progress.
"$SQLITE3" -separator ' ' "$WORK/state/fotad.db" \
  "SELECT coalesce(sum(c.blocks), 0), min(j.started_at), \
     max(c.last_block_at) FROM job_components c JOIN jobs j \
     ON j.id = c.job_id" >"$WORK/blocks.txt" 2>/dev/null ||
  echo "0 0 0" >"$WORK/blocks.txt"
read -r blocks first_ms last_ms <"$WORK/blocks.txt"

echo "## rollout: $ROLL_COUNT devices, one $ROLL_SIZE-byte package each over"
echo "## CoAP Block2 (1 KiB blocks), stages [$ROLL_STAGES], success gate 0.95,"
echo "## at most $ROLL_CONCURRENT jobs at once"
awk -v rs="$reg_start" -v re="$reg_end" \
  -v s="$start" -v st="$started" -v e="$end" -v n="$ROLL_COUNT" \
  -v state="$state" -v ok="${ok:-0}" -v bad="${failed:-0}" -v b="$blocks" \
  -v f="${first_ms:-0}" -v l="${last_ms:-0}" -v fc0="$fotad_cpu0" \
  -v fc="$fotad_cpu" -v sc0="$sim_cpu0" -v sc="$sim_cpu" -v hwm="$hwm" \
  -v rss="$rss" '
BEGIN {
  t = e - s
  w = (l - f) / 1000
  printf "registered and read           %.1f s (before the rollout)\n", re - rs
  printf "rollout state                 %s\n", state
  printf "devices updated               %d of %d (failed: %d)\n", ok, n, bad
  printf "start (membership of %d)   %.1f s\n", n, st - s
  printf "total time                    %.1f s (start to the end of the rollout)\n", t
  printf "updates per hour              %.0f\n", (t > 0 ? ok * 3600 / t : 0)
  printf "CoAP blocks served            %d in %.1f s (first job to last block)\n", b, w
  printf "blocks per second             %.0f\n", (w > 0 ? b / w : 0)
  printf "fotad CPU                     %.2f s (%.0f%% of the time)\n", fc - fc0, (t > 0 ? 100 * (fc - fc0) / t : 0)
  printf "fotad-sim CPU                 %.2f s (%.0f%% of the time)\n", sc - sc0, (t > 0 ? 100 * (sc - sc0) / t : 0)
  printf "fotad peak RSS                %d kB (now %d kB)\n", hwm, rss
  printf "limit                         %s\n", ((fc - fc0 > sc - sc0) ? "fotad" : "fotad-sim")
}'
