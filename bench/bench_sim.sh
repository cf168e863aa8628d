#!/bin/sh
# The simulator at scale: N fotad-sim devices (default 10,000, one process,
# each its own UDP socket, each with two 33629 components) register with a
# release build of fotad, which reads and observes every component. Prints
# the wall time, registrations per second, and the CPU seconds of fotad and
# of the simulator, to show which one is the limit.
#
#   sh bench/bench_sim.sh            (from a build folder; FOTAD, FOTAD_SIM,
#                                     SIM_COUNT, SIM_RATE override)
set -u
: "${SIM_COUNT:=10000}"
: "${SIM_RATE:=}"
: "${SIM_LIMIT:=300}"

NAME=sim
. "$(dirname "$0")/bench_lib.sh"
fotad_start
port=$COAP_PORT

start=$(date +%s.%N)
"$FOTAD_SIM" -s "coap://127.0.0.1:$port" -n "$SIM_COUNT" -e 'bench-%05d' \
  --lwm2m 1.1 -l 3600 -c application=1.0,modem=2.1 \
  ${SIM_RATE:+-R "$SIM_RATE/s"} \
  --until all-registered -d "$SIM_LIMIT" --report "$WORK/report.json" \
  >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
# The simulator's CPU is read from /proc just before it exits, by polling.
sim_cpu=0
while kill -0 "$SIM_PID" 2>/dev/null; do
  c=$(cpu_s "$SIM_PID")
  [ -n "$c" ] && sim_cpu=$c
  sleep 0.2
done
wait "$SIM_PID"
status=$?
SIM_PID=
end=$(date +%s.%N)
sleep 2 # let fotad finish its component reads
fotad_cpu=$(cpu_s "$FOTAD_PID")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$FOTAD_PID/status")

echo "## fotad-sim: $SIM_COUNT devices, two 33629 components each"
tail -n 12 "$WORK/sim.log"
awk -v s="$start" -v e="$end" -v n="$SIM_COUNT" -v fc="$fotad_cpu" \
  -v sc="$sim_cpu" -v st="$status" -v rss="$rss" 'BEGIN {
  t = e - s
  printf "simulator exit status         %d (0: all registered)\n", st
  printf "wall time                     %.1f s\n", t
  printf "registrations per second      %.0f\n", n / t
  printf "fotad CPU                     %s s\n", fc
  printf "fotad-sim CPU                 %s s\n", sc
  printf "fotad RSS                     %d kB\n", rss
  printf "limit                         %s\n", (fc + 0 > sc + 0) ? "fotad" : "fotad-sim"
}'
