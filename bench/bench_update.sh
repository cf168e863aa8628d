#!/bin/sh
# Update jobs at scale: N fotad-sim devices (default 1,000, one 33629
# component each) are updated through the REST API, one job per device,
# all created at once, with one package (default 64 KiB) served by fotad
# over CoAP Block2 (1 KiB blocks). Prints the total time from the first
# job to the last success, jobs per second, the blocks served per second
# over CoAP while the downloads ran (about N at once), and the CPU seconds
# of fotad and of the simulator. Figures only: nothing fails on a figure.
#
#   sh bench/bench_update.sh     (from a release build folder; FOTAD,
#                                 FOTAD_SIM, UPD_COUNT, UPD_SIZE, UPD_LIMIT
#                                 override)
#
# Every process started here is stopped by its PID, at the latest in the
# trap.
set -u
: "${UPD_COUNT:=1000}"
: "${UPD_SIZE:=65536}"
: "${UPD_LIMIT:=600}"

NAME=update
. "$(dirname "$0")/bench_lib.sh"
fotad_start "api_rate_limit 0" "metrics_public yes" \
  "job_download_timeout 10m" "job_update_timeout 5m" "job_reboot_timeout 5m"
coap=$COAP_PORT
base=$BASE
auth=$AUTH

head -c "$UPD_SIZE" /dev/urandom >"$WORK/app.bin"
pkg=$("$CURL" -sS -m 60 -H "$auth" -T "$WORK/app.bin" \
  "$base/api/v1/packages?component=application&version=2.0" |
  sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
[ -n "$pkg" ] || fail "the package upload failed"

"$FOTAD_SIM" -s "coap://127.0.0.1:$coap" -n "$UPD_COUNT" -e 'upd-%05d' \
  --lwm2m 1.1 -l 3600 -c application=1.0 --package-version 2.0 \
  --reboot-time 1 --no-deregister -d "$UPD_LIMIT" \
  >"$WORK/sim.log" 2>&1 &
SIM_PID=$!

# metric NAME: the value of one series of GET /metrics (0 if absent).
metric() {
  "$CURL" -sS -m 10 "$base/metrics" |
    awk -v m="$1" '$1 == m {print $2; f = 1} END {if (!f) print 0}'
}
# All devices registered and their component read.
i=0
while :; do
  n=$("$CURL" -sS -m 10 -H "$auth" "$base/api/v1/components" |
    grep -o '"component":"application","version":"1.0","devices":[0-9]*' |
    sed 's/.*://')
  [ "${n:-0}" -ge "$UPD_COUNT" ] && break
  i=$((i + 1))
  [ $i -le 600 ] || fail "devices did not register (${n:-0})"
  sleep 0.1
done

# One request per device, sent by one curl over a few connections.
i=0
while [ $i -lt "$UPD_COUNT" ]; do
  [ $i -gt 0 ] && printf 'next\n'
  printf 'url = "%s/api/v1/devices/upd-%05d/updates"\n' "$base" "$i"
  printf 'request = "POST"\nheader = "%s"\n' "$auth"
  printf 'header = "Content-Type: application/json"\n'
  printf 'data = "{\\"package\\":%s}"\noutput = "/dev/null"\n' "$pkg"
  printf 'write-out = "%%{http_code}\\n"\n'
  i=$((i + 1))
done >"$WORK/requests.curl"
fotad_cpu0=$(cpu_s "$FOTAD_PID")
sim_cpu0=$(cpu_s "$SIM_PID")
start=$(now)
"$CURL" -sS --parallel --parallel-max 16 -K "$WORK/requests.curl" \
  >"$WORK/created.txt" 2>"$WORK/curl.log"
created_end=$(now)
created=$(grep -c '^201$' "$WORK/created.txt")

# Until every job has finished (succeeded or not). The simulator's CPU
# is read on the way, in case it stops first (-d UPD_LIMIT).
done_jobs=0
sim_cpu=$sim_cpu0
i=0
while :; do
  c=$(cpu_s "$SIM_PID")
  [ -n "$c" ] && sim_cpu=$c
  ok=$(metric 'fotad_jobs{state="succeeded"}')
  bad=0
  for s in failed timed-out cancelled; do
    v=$(metric "fotad_jobs{state=\"$s\"}")
    bad=$((bad + ${v%.*}))
  done
  done_jobs=$((${ok%.*} + bad))
  [ "$done_jobs" -ge "$created" ] && break
  i=$((i + 1))
  [ $i -le $((UPD_LIMIT * 5)) ] || break
  sleep 0.2
done
end=$(now)
fotad_cpu=$(cpu_s "$FOTAD_PID")
c=$(cpu_s "$SIM_PID")
[ -n "$c" ] && sim_cpu=$c
rss=$(awk '/VmRSS/ {print $2}' "/proc/$FOTAD_PID/status")

# The download window and the blocks served, from the stored progress.
"$SQLITE3" -separator ' ' "$WORK/state/fotad.db" \
  "SELECT coalesce(sum(c.blocks), 0), min(j.started_at), \
     max(c.last_block_at) FROM job_components c JOIN jobs j \
     ON j.id = c.job_id" >"$WORK/blocks.txt" 2>/dev/null ||
  echo "0 0 0" >"$WORK/blocks.txt"
read -r blocks first_ms last_ms <"$WORK/blocks.txt"

echo "## update jobs: $UPD_COUNT devices, one $UPD_SIZE-byte package each"
echo "## over CoAP Block2 (1 KiB blocks), all jobs created at once"
awk -v s="$start" -v ce="$created_end" -v e="$end" -v n="$UPD_COUNT" \
  -v c="$created" -v ok="$ok" -v d="$done_jobs" -v b="$blocks" \
  -v f="${first_ms:-0}" -v l="${last_ms:-0}" -v fc0="$fotad_cpu0" \
  -v fc="$fotad_cpu" -v sc0="$sim_cpu0" -v sc="$sim_cpu" -v rss="$rss" '
BEGIN {
  t = e - s
  w = (l - f) / 1000
  printf "jobs created (201)            %d of %d in %.1f s\n", c, n, ce - s
  printf "jobs succeeded                %d (finished: %d)\n", ok, d
  printf "total time                    %.1f s (first POST to last job done)\n", t
  printf "jobs per second               %.1f\n", (t > 0 ? d / t : 0)
  printf "CoAP blocks served            %d in %.1f s (first URI to last block)\n", b, w
  printf "blocks per second             %.0f\n", (w > 0 ? b / w : 0)
  printf "fotad CPU                     %.2f s\n", fc - fc0
  printf "fotad-sim CPU                 %.2f s\n", sc - sc0
  printf "fotad RSS                     %d kB\n", rss
  printf "limit                         %s\n", ((fc - fc0 > sc - sc0) ? "fotad" : "fotad-sim")
}'
