# Shared helpers for the integration tests: TAP output, and starting the
# real fotad on ephemeral 127.0.0.1 ports in a private temporary folder.
# Each test script sources this file, then calls fotad_start.

set -u

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
: "${CURL:=curl}"
: "${COAP_CLIENT:=coap-client-gnutls}"
FOTAD="$top_builddir/fotad"

# Every API call but health needs a token. fotad_start reads the bootstrap
# admin token into FOTAD_TOKEN, and "$CURL" becomes this function, which
# sends it: scripts call "$CURL" as before. REAL_CURL sends nothing.
REAL_CURL=$CURL
FOTAD_TOKEN=
fotad_curl() {
  if [ -n "$FOTAD_TOKEN" ]; then
    "$REAL_CURL" -H "Authorization: Bearer $FOTAD_TOKEN" "$@"
  else
    "$REAL_CURL" "$@"
  fi
}
CURL=fotad_curl

tap_n=0
tap_failed=0

ok() {
  # ok CONDITION-STATUS DESCRIPTION
  tap_n=$((tap_n + 1))
  if [ "$1" -eq 0 ]; then
    echo "ok $tap_n - $2"
  else
    echo "not ok $tap_n - $2"
    tap_failed=$((tap_failed + 1))
  fi
}

# check DESCRIPTION COMMAND...: runs the command, ok if it exits 0.
check() {
  desc=$1
  shift
  "$@" >/dev/null 2>&1
  ok $? "$desc"
}

diag() {
  printf '%s\n' "$@" | sed 's/^/# /'
}

skip_all() {
  echo "1..0 # SKIP $1"
  exit 0
}

bail() {
  echo "Bail out! $1"
  [ -n "${FOTAD_LOG:-}" ] && [ -f "$FOTAD_LOG" ] && diag "$(tail -n 40 "$FOTAD_LOG")"
  exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fotad-test.XXXXXX")
FOTAD_PID=
FOTAD_LOG="$WORK/fotad.log"

cleanup() {
  if [ -n "${SIM_PID:-}" ] && kill -0 "$SIM_PID" 2>/dev/null; then
    kill -KILL "$SIM_PID" 2>/dev/null
    wait "$SIM_PID" 2>/dev/null
  fi
  if [ -n "$FOTAD_PID" ] && kill -0 "$FOTAD_PID" 2>/dev/null; then
    kill -KILL "$FOTAD_PID" 2>/dev/null
    wait "$FOTAD_PID" 2>/dev/null
  fi
  # KEEP_WORK=1 keeps the folder (fotad's log, database) for a post-mortem.
  if [ -n "${KEEP_WORK:-}" ]; then
    echo "# kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# Writes a config for a private instance: state in $WORK/state, every
# listener on 127.0.0.1 port 0. Extra "key value" lines may follow.
write_config() {
  {
    echo "state_dir $WORK/state"
    echo "coap_listen 127.0.0.1:${FOTAD_COAP_PORT:-0}"
    echo "coaps_listen 127.0.0.1:${FOTAD_COAPS_PORT:-0}"
    echo "http_listen 127.0.0.1:0"
    echo "log_level ${FOTAD_LOG_LEVEL:-debug}"
    for line in "$@"; do echo "$line"; done
  } >"$WORK/fotad.conf"
}

# Starts fotad in the foreground with $WORK/fotad.conf and waits (at most
# 20 s) for its port file. Sets FOTAD_PID, COAP_PORT, HTTP_PORT, BASE.
fotad_start() {
  [ -f "$WORK/fotad.conf" ] || write_config
  rm -f "$WORK/ports"
  "$FOTAD" -f -c "$WORK/fotad.conf" --portfile "$WORK/ports" \
    >>"$FOTAD_LOG" 2>&1 &
  FOTAD_PID=$!
  i=0
  while [ ! -s "$WORK/ports" ]; do
    if ! kill -0 "$FOTAD_PID" 2>/dev/null; then
      wait "$FOTAD_PID"
      bail "fotad exited with status $? before listening"
    fi
    i=$((i + 1))
    [ $i -le 200 ] || bail "fotad did not write its port file in 20 s"
    sleep 0.1
  done
  COAP_PORT=$(sed -n 's/^coap=//p' "$WORK/ports")
  COAPS_PORT=$(sed -n 's/^coaps=//p' "$WORK/ports")
  HTTP_PORT=$(sed -n 's/^http=//p' "$WORK/ports")
  BASE="http://127.0.0.1:$HTTP_PORT"
  # Written before the port file, on the first start of this state folder.
  TOKEN_FILE="$WORK/state/api-token"
  [ -s "$TOKEN_FILE" ] || bail "fotad wrote no bootstrap token to $TOKEN_FILE"
  FOTAD_TOKEN=$(cat "$TOKEN_FILE")
}

# Writes the config again with the CoAP ports now bound, so that devices
# keep reaching a restarted fotad. Extra lines as for write_config.
keep_coap_ports() {
  FOTAD_COAP_PORT=$COAP_PORT FOTAD_COAPS_PORT=$COAPS_PORT write_config "$@"
}

# Sends SIGTERM and waits (at most 20 s); sets FOTAD_STATUS.
fotad_stop() {
  kill -TERM "$FOTAD_PID"
  i=0
  while kill -0 "$FOTAD_PID" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then
      kill -KILL "$FOTAD_PID"
      break
    fi
    sleep 0.1
  done
  wait "$FOTAD_PID"
  FOTAD_STATUS=$?
  FOTAD_PID=
}

# Succeeds when the daemon's log has no sanitizer report.
log_clean() {
  ! grep -E 'ERROR: (Address|Leak|Undefined|Thread)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' \
    "$FOTAD_LOG" >/dev/null
}

# http METHOD PATH [curl args...]: prints the body, then the status on a
# last line of its own.
http() {
  m=$1
  p=$2
  shift 2
  "$CURL" -sS -m 10 -X "$m" -w '\n%{http_code}' "$@" "$BASE$p"
}

# Fails the whole script (after the plan) if any check failed.
done_testing() {
  echo "1..$tap_n"
  if [ $tap_failed -gt 0 ]; then
    diag "fotad log (last 60 lines):" "$(tail -n 60 "$FOTAD_LOG" 2>/dev/null)"
    exit 1
  fi
  exit 0
}

# The fleet simulator: sim_start ARGS... runs fotad-sim against this
# fotad's CoAP port in the background (log in $WORK/sim.log); sim_stop
# ends it with SIGTERM and sets SIM_STATUS.
FOTAD_SIM="$top_builddir/fotad-sim"
SIM_PID=
sim_start() {
  "$FOTAD_SIM" -s "coap://127.0.0.1:$COAP_PORT" "$@" >>"$WORK/sim.log" 2>&1 &
  SIM_PID=$!
}

sim_stop() {
  [ -n "$SIM_PID" ] || return 0
  kill -TERM "$SIM_PID" 2>/dev/null
  i=0
  while kill -0 "$SIM_PID" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  kill -KILL "$SIM_PID" 2>/dev/null
  wait "$SIM_PID"
  SIM_STATUS=$?
  SIM_PID=
}

# wait_for SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
  w_limit=$(($1 * 10))
  shift
  w_i=0
  while ! "$@" >/dev/null 2>&1; do
    w_i=$((w_i + 1))
    [ $w_i -le $w_limit ] || return 1
    sleep 0.1
  done
  return 0
}

# device_online EP: the device is registered.
device_online() {
  "$CURL" -sS -m 5 "$BASE/api/v1/devices/$1" | grep -q '"online":true'
}

# op EP OPERATION JSON: a device-management call; body then status line.
op() {
  "$CURL" -sS -m 30 -X POST -H 'Content-Type: application/json' \
    -w '\n%{http_code}' -d "$3" "$BASE/api/v1/devices/$1/$2"
}
