# Shared by the fotad benchmarks that start their own fotad (sourced, with
# NAME set to the benchmark's short name): a private folder, cleanup of
# every process started (by PID, at the latest in the trap), CPU seconds
# from /proc, and fotad started on 127.0.0.1 port 0 with the extra config
# lines given.
: "${FOTAD:=./fotad}"
: "${FOTAD_SIM:=./fotad-sim}"
: "${CURL:=curl}"
: "${SQLITE3:=sqlite3}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fotad-bench-$NAME.XXXXXX") || exit 1
FOTAD_PID=
SIM_PID=
cleanup() {
  [ -n "$SIM_PID" ] && kill -KILL "$SIM_PID" 2>/dev/null
  [ -n "$FOTAD_PID" ] && kill -KILL "$FOTAD_PID" 2>/dev/null
  wait 2>/dev/null
  # KEEP_WORK=1 keeps the folder (logs, database) for a post-mortem.
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "bench_$NAME: $1" >&2
  [ -f "$WORK/fotad.log" ] && tail -n 20 "$WORK/fotad.log" >&2
  exit 1
}

# cpu_s PID: user + system CPU seconds of a running process.
cpu_s() {
  awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null
}

now() {
  date +%s.%N
}

# fotad_start [CONFIG LINE]...: starts fotad (warn log, 64M UDP buffer) and
# sets FOTAD_PID, COAP_PORT, BASE and AUTH (the bootstrap admin token).
fotad_start() {
  {
    echo "state_dir $WORK/state"
    echo "coap_listen 127.0.0.1:0"
    echo 'coaps_listen ""'
    echo "http_listen 127.0.0.1:0"
    echo "log_level warn"
    echo "coap_udp_rcvbuf 64M"
    for line in "$@"; do echo "$line"; done
  } >"$WORK/fotad.conf"
  "$FOTAD" -f -c "$WORK/fotad.conf" --portfile "$WORK/ports" \
    >"$WORK/fotad.log" 2>&1 &
  FOTAD_PID=$!
  i=0
  while [ ! -s "$WORK/ports" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  [ -s "$WORK/ports" ] || fail "fotad did not start"
  COAP_PORT=$(sed -n 's/^coap=//p' "$WORK/ports")
  BASE="http://127.0.0.1:$(sed -n 's/^http=//p' "$WORK/ports")"
  AUTH="Authorization: Bearer $(cat "$WORK/state/api-token")"
}
