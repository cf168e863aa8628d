#!/bin/sh
# Registration benchmarks: fotad's registration interface under load from
# bench/rd_load, and libcoap's own coap-rd (Debian libcoap3-bin) under the
# same load, in the same run. Figures only: nothing fails on a figure.
#
#   (a) Register throughput: REG_CLIENTS sockets, each registering
#       REG_PER_CLIENT distinct endpoints one after the other (one CON at
#       a time), every registration persisted in SQLite (fotad's default);
#       REG_ROUNDS rounds of fotad then coap-rd, medians reported.
#   (b) Update throughput with N distinct client sessions, for each N of
#       UPD_SIZES: each registers once; once all have, they send
#       UPD_TOTAL Updates in all (for at most UPD_DURATION s).
#   (c) Resident memory per registered device at each of MEM_SIZES: VmRSS
#       before and after registering N devices, each from its own socket
#       (several rd_load processes and 127.0.0.x source addresses beyond
#       what one process or one address can hold), divided by N.
#
# Run from the build folder after "make fotad bench/rd_load" (a release
# build, without --enable-sanitizers), or through "make bench":
#   sh /path/to/src/bench/bench_rd.sh
# Every knob below can be set in the environment. Loopback only; every
# process started here is stopped by its PID, at the latest in the trap.
#
# Lists of files and rd_load options are split on blanks on purpose (the
# work folder comes from mktemp); cleanup only runs from the trap.
# shellcheck disable=SC2046,SC2086,SC2317
set -u

: "${FOTAD:=./fotad}"
: "${RD_LOAD:=./bench/rd_load}"
: "${COAP_RD:=coap-rd-notls}"
: "${REG_CLIENTS:=64}"
: "${REG_PER_CLIENT:=300}"
: "${REG_ROUNDS:=9}"
: "${UPD_SIZES:=1000 10000 100000}"
: "${UPD_TOTAL:=1000000}"
: "${UPD_DURATION:=20}"
: "${MEM_SIZES:=1000 10000 100000}"
: "${MEM_DURATION:=420}"
# Requests in flight across all sockets: enough to keep the server busy,
# few enough that queueing stays well under the 2 s retransmission time.
: "${INFLIGHT:=256}"
# Clients per rd_load process (the descriptor hard limit here is 20000)
# and per 127.0.0.x source address (one address has ~28k ephemeral ports).
: "${PROC_CLIENTS:=18000}"
: "${PER_ADDR:=16384}"
: "${FOTAD_LOG_LEVEL:=warn}"
: "${RCVBUF:=64M}"
# Which loads to run: any of a, b, c (e.g. PARTS=a for (a) alone).
: "${PARTS:=a b c}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fotad-bench.XXXXXX") || exit 1
FOTAD_PID=
COAPRD_PID=
LOAD_PIDS=
CLK_TCK=$(getconf CLK_TCK)

# stop_pid PID SIGNAL: signals one process this script started, waits at
# most 30 s for it, then kills it.
stop_pid() {
  [ -n "$1" ] || return 0
  kill -"$2" "$1" 2>/dev/null || return 0
  sp_i=0
  while kill -0 "$1" 2>/dev/null && [ $sp_i -lt 300 ]; do
    sleep 0.1
    sp_i=$((sp_i + 1))
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

stop_loads() {
  for sl_p in $LOAD_PIDS; do
    stop_pid "$sl_p" TERM
  done
  LOAD_PIDS=
}

cleanup() {
  stop_loads
  stop_pid "$COAPRD_PID" INT
  stop_pid "$FOTAD_PID" TERM
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "bench_rd: $*" >&2
  for f in "$WORK"/*/fotad.log "$WORK"/coap-rd.log; do
    if [ -s "$f" ]; then
      echo "--- $f" >&2
      tail -n 20 "$f" >&2
    fi
  done
  exit 1
}

[ -x "$FOTAD" ] || die "no fotad at $FOTAD (run from the build folder, or set FOTAD)"
[ -x "$RD_LOAD" ] || die "no rd_load at $RD_LOAD (make bench/rd_load, or set RD_LOAD)"

now_ms() {
  date +%s%3N
}

# CPU seconds (user + system) a process has used so far.
cpu_s() {
  sed 's/^.*) //' "/proc/$1/stat" |
    awk -v hz="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / hz }'
}

rss_kb() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# calc EXPR [VAR=VALUE...]: evaluates an awk expression, prints it.
calc() {
  ca_e=$1
  shift
  ca_v=
  for ca_a in "$@"; do
    ca_v="$ca_v -v $ca_a"
  done
  awk $ca_v "BEGIN { print $ca_e }"
}

# Starts a fresh fotad in $WORK/NAME; sets FOTAD_PID and TARGET.
fotad_start() {
  fs_d="$WORK/$1"
  mkdir -p "$fs_d"
  cat >"$fs_d/fotad.conf" <<EOF
state_dir $fs_d/state
coap_listen 127.0.0.1:0
coaps_listen ""
http_listen 127.0.0.1:0
log_level $FOTAD_LOG_LEVEL
coap_udp_rcvbuf $RCVBUF
lifetime_default 365d
EOF
  "$FOTAD" -f -c "$fs_d/fotad.conf" --portfile "$fs_d/ports" \
    >"$fs_d/fotad.log" 2>&1 &
  FOTAD_PID=$!
  fs_i=0
  while [ ! -s "$fs_d/ports" ]; do
    kill -0 "$FOTAD_PID" 2>/dev/null || die "fotad exited before listening"
    fs_i=$((fs_i + 1))
    [ $fs_i -le 200 ] || die "fotad wrote no port file in 20 s"
    sleep 0.1
  done
  fs_port=$(sed -n 's/^coap=//p' "$fs_d/ports")
  [ -n "$fs_port" ] || die "no coap port in $fs_d/ports"
  TARGET="127.0.0.1:$fs_port"
  HEALTH_URL="http://127.0.0.1:$(sed -n 's/^http=//p' "$fs_d/ports")/api/v1/health"
}

# The number of registrations fotad holds, from its health reply (empty
# if curl is missing or the reply has no "registered").
fotad_registered() {
  command -v curl >/dev/null 2>&1 || return 0
  curl -s -m 30 "$HEALTH_URL" |
    sed -n 's/.*"registered": *\([0-9][0-9]*\).*/\1/p'
}

fotad_alive() {
  kill -0 "$FOTAD_PID" 2>/dev/null || die "fotad died during the run"
}

fotad_stop() {
  stop_pid "$FOTAD_PID" TERM
  FOTAD_PID=
}

# Starts coap-rd on 127.0.0.1 and a free port below the ephemeral range
# (it binds UDP and TCP on the port); sets COAPRD_PID and TARGET.
coaprd_start() {
  command -v "$COAP_RD" >/dev/null 2>&1 || return 1
  cr_p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 10000))
  cr_tries=0
  while [ $cr_tries -lt 50 ]; do
    if [ -z "$(ss -Hlnu "sport = :$cr_p")" ] &&
      [ -z "$(ss -Hlnt "sport = :$cr_p")" ]; then
      "$COAP_RD" -A 127.0.0.1 -p "$cr_p" >"$WORK/coap-rd.log" 2>&1 &
      COAPRD_PID=$!
      cr_i=0
      while [ $cr_i -lt 50 ]; do
        if ss -Hlnup "sport = :$cr_p" | grep -q "pid=$COAPRD_PID,"; then
          TARGET="127.0.0.1:$cr_p"
          return 0
        fi
        kill -0 "$COAPRD_PID" 2>/dev/null || break
        sleep 0.1
        cr_i=$((cr_i + 1))
      done
      stop_pid "$COAPRD_PID" INT
      COAPRD_PID=
    fi
    cr_p=$((cr_p + 1))
    cr_tries=$((cr_tries + 1))
  done
  return 1
}

coaprd_stop() {
  stop_pid "$COAPRD_PID" INT
  COAPRD_PID=
}

# agg PHASE FILE...: sums the "result" lines of PHASE over processes:
# "requests ok retransmits timeouts elapsed_max cpu_sum". They started
# together, so the longest elapsed time is the run's.
agg() {
  agg_phase=$1
  shift
  awk -v ph="phase=$agg_phase" '
    $1 == "result" && $2 == ph {
      for (i = 3; i <= NF; i++) {
        split($i, kv, "=")
        v[kv[1]] = kv[2]
      }
      req += v["requests"]; ok += v["ok"]; rt += v["retransmits"]
      to += v["timeouts"]; cpu += v["cpu_s"]
      if (v["elapsed_s"] + 0 > el) el = v["elapsed_s"] + 0
    }
    END { printf "%d %d %d %d %.6f %.3f\n", req, ok, rt, to, el, cpu }' "$@"
}

# Sum of the rd_load processes' whole CPU time ("cpu total_s=").
load_cpu() {
  awk -F'total_s=' '/^cpu total_s=/ { s += $2 } END { printf "%.2f", s }' "$@"
}

# report LABEL PHASE FILE...: prints one phase's summed figures; sets R_OK
# and R_RATE (successful requests per second).
report() {
  rep_label=$1
  rep_phase=$2
  shift 2
  set -- $(agg "$rep_phase" "$@")
  R_OK=$2
  R_RATE=$(calc '(el + 0 > 0 ? sprintf("%.0f", ok / el) : 0)' ok="$2" el="$5")
  printf '%-30s requests=%s ok=%s retransmits=%s timeouts=%s elapsed=%ss rate=%s/s\n' \
    "$rep_label" "$1" "$2" "$3" "$4" "$5" "$R_RATE"
}

# run_procs NAME NCLIENTS FIRST HOLD "ARGS": runs rd_load against $TARGET
# over as many processes as NCLIENTS needs (at most PROC_CLIENTS sockets
# each), all starting at the same moment, with distinct endpoint prefixes
# and client numbers (hence source addresses) from FIRST on. ARGS are
# further rd_load options. Waits until each has printed "done"; with
# HOLD=1 they keep running, holding their sockets, and join LOAD_PIDS.
# With RP_MARK=PHASE set, samples fotad's CPU time into RP_MARK_CPU when
# every process has finished that phase. Sets RUN_FILES.
run_procs() {
  rp_name=$1
  rp_n=$2
  rp_first=$3
  rp_hold=$4
  rp_args=$5
  rp_nproc=$(((rp_n + PROC_CLIENTS - 1) / PROC_CLIENTS))
  rp_share=$(((rp_n + rp_nproc - 1) / rp_nproc))
  # Time to open the sockets before the common start.
  rp_start=$(($(now_ms) + 500 + rp_nproc * 500))
  rp_holdopt=
  [ "$rp_hold" = 1 ] && rp_holdopt=--hold
  RUN_FILES=
  : >"$WORK/$rp_name.procs"
  rp_k=0
  rp_off=$rp_first
  while [ $rp_k -lt $rp_nproc ]; do
    rp_c=$rp_share
    [ $((rp_off + rp_c)) -le $((rp_first + rp_n)) ] ||
      rp_c=$((rp_first + rp_n - rp_off))
    rp_f="$WORK/$rp_name.$rp_k.out"
    "$RD_LOAD" --server "$TARGET" $rp_args --clients "$rp_c" \
      --first-client "$rp_off" --per-addr "$PER_ADDR" \
      --start-at-ms "$rp_start" --ep-prefix "$rp_name-$rp_k-" \
      $rp_holdopt >"$rp_f" 2>"$rp_f.err" &
    echo "$! $rp_f" >>"$WORK/$rp_name.procs"
    [ "$rp_hold" = 1 ] && LOAD_PIDS="$LOAD_PIDS $!"
    RUN_FILES="$RUN_FILES $rp_f"
    rp_off=$((rp_off + rp_c))
    rp_k=$((rp_k + 1))
  done
  if [ -n "${RP_MARK:-}" ]; then
    rp_i=0
    while [ $rp_i -lt 12000 ]; do
      rp_all=1
      for rp_f in $RUN_FILES; do
        grep -q "^result phase=$RP_MARK " "$rp_f" 2>/dev/null || rp_all=0
      done
      [ $rp_all = 1 ] && break
      rp_i=$((rp_i + 1))
      sleep 0.05
    done
    RP_MARK_CPU=$(cpu_s "$FOTAD_PID")
    [ -z "${RP_GO:-}" ] || : >"$RP_GO"
  fi
  while read -r rp_p rp_f; do
    if [ "$rp_hold" = 1 ]; then
      # Held processes do not exit: wait for their "done" line.
      rp_i=0
      until grep -q "^done" "$rp_f" 2>/dev/null; do
        kill -0 "$rp_p" 2>/dev/null ||
          die "rd_load exited early: $(cat "$rp_f.err")"
        rp_i=$((rp_i + 1))
        [ $rp_i -le 6000 ] || die "rd_load $rp_p did not finish in 600 s"
        sleep 0.1
      done
    else
      wait "$rp_p" || die "rd_load failed: $(cat "$rp_f.err")"
    fi
  done <"$WORK/$rp_name.procs"
}

echo "# fotad registration benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# host: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
echo "# fotad: $FOTAD ($("$FOTAD" --version 2>&1 | head -n 1)), log_level $FOTAD_LOG_LEVEL, coap_udp_rcvbuf $RCVBUF"
echo "# load: $RD_LOAD, one CON at a time per socket, at most $INFLIGHT in flight"

# part X: true if load X is to run.
part() {
  case " $PARTS " in
  *" $1 "*) return 0 ;;
  *) return 1 ;;
  esac
}

A_FOTAD="n/a"
A_FOTAD_US="n/a"
A_FOTAD_CPU="n/a"
A_LOAD_CPU="n/a"
A_COAPRD="n/a"
A_COAPRD_US="n/a"
A_RATIO="n/a"
A_US_RATIO="n/a"
B_TABLE=
B_FOTAD_CPU="n/a"
B_LOAD_CPU="n/a"
B_COAPRD_NOTE="coap-rd not run"
C_FOTAD_CPU="n/a"
C_LOAD_CPU="n/a"
MEM_TABLE=

# --- (a) Register throughput ---------------------------------------------
# REG_ROUNDS rounds, each a fresh fotad then coap-rd under the same load,
# back to back: a shared machine's speed drifts over seconds, so each
# round's ratio compares runs made close together, and the figures are
# the medians over the rounds.
if part a; then
NREG=$((REG_CLIENTS * REG_PER_CLIENT))
A_ARGS="--phase register --regs-per-client $REG_PER_CLIENT \
--max-inflight $INFLIGHT --adaptive --duration 120"
echo
echo "## (a) Register: $REG_CLIENTS sockets x $REG_PER_CLIENT endpoints = $NREG registrations, $REG_ROUNDS rounds"
: >"$WORK/a.rounds"
A_PROBED=0
k=1
while [ $k -le "$REG_ROUNDS" ]; do
  fotad_start "a$k"
  cpu0=$(cpu_s "$FOTAD_PID")
  run_procs "a$k" "$REG_CLIENTS" 0 0 "$A_ARGS"
  fotad_alive
  f_cpu=$(calc 'b - a' a="$cpu0" b="$(cpu_s "$FOTAD_PID")")
  A_LOAD_CPU=$(load_cpu $RUN_FILES)
  report "round $k: fotad register" register $RUN_FILES
  f_rate=$R_RATE
  f_us=$(calc '(n + 0 > 0 ? sprintf("%.1f", c * 1e6 / n) : "n/a")' c="$f_cpu" n="$R_OK")
  f_ok=$R_OK
  fotad_stop
  rows="(no sqlite3 shell)"
  if command -v sqlite3 >/dev/null 2>&1; then
    rows=$(sqlite3 "$WORK/a$k/state/fotad.db" \
      'SELECT count(*) FROM devices WHERE location IS NOT NULL' 2>&1)
  fi
  echo "round $k: fotad: $f_cpu s CPU ($f_us us per registration); registrations in the database after it stopped: $rows, of $f_ok registered"
  A_FOTAD_CPU=$f_cpu
  c_rate=n/a
  c_us=n/a
  if coaprd_start; then
    cpu0=$(cpu_s "$COAPRD_PID")
    run_procs "a$k-rd" "$REG_CLIENTS" 0 0 "$A_ARGS"
    c_cpu=$(calc 'b - a' a="$cpu0" b="$(cpu_s "$COAPRD_PID")")
    report "round $k: coap-rd register" register $RUN_FILES
    c_rate=$R_RATE
    c_us=$(calc '(n + 0 > 0 ? sprintf("%.1f", c * 1e6 / n) : "n/a")' c="$c_cpu" n="$R_OK")
    echo "round $k: coap-rd: $c_cpu s CPU ($c_us us per registration); ratio $(calc 'sprintf("%.2f", f / c)' f="$f_rate" c="$c_rate")"
    if [ $A_PROBED = 0 ]; then
      A_PROBED=1
      # Does coap-rd take an LwM2M Update (POST /rd/<location>)?
      "$RD_LOAD" --server "$TARGET" --clients 1 --phase both \
        --updates-per-client 1 --ep-prefix probe- --duration 10 \
        >"$WORK/rd-probe.out" 2>&1
      set -- $(agg update "$WORK/rd-probe.out")
      codes=$(awk '$2 == "phase=update" {
        for (i = 1; i <= NF; i++) if ($i ~ /^code_/) printf "%s ", $i }' \
        "$WORK/rd-probe.out")
      if [ "$2" = 1 ]; then
        B_COAPRD_NOTE=
      else
        B_COAPRD_NOTE="coap-rd has no LwM2M Update: POST /rd/<location> got ${codes:-no answer}(it only registers GET, PUT=5.01 and DELETE on an rd entry), so load (b) is not run against it"
        echo "$B_COAPRD_NOTE"
      fi
    fi
    coaprd_stop
  else
    echo "coap-rd ($COAP_RD) not available, or no free port: comparison skipped"
  fi
  echo "$f_rate $f_us $c_rate $c_us" >>"$WORK/a.rounds"
  k=$((k + 1))
done
# med: the median of the numbers on standard input, one per line.
med() {
  sort -g | awk '{ v[NR] = $1 }
    END {
      if (NR == 0) { print "n/a"; exit }
      print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)
    }'
}
# column N: column N of a.rounds, or nothing if any round lacks it.
column() {
  awk -v c="$1" '$c == "n/a" { bad = 1 } { v[NR] = $c }
    END { if (!bad) for (i = 1; i <= NR; i++) print v[i] }' "$WORK/a.rounds"
}
A_FOTAD=$(calc 'sprintf("%.0f", v)' v="$(column 1 | med)")
A_FOTAD_US=$(column 2 | med)
if [ "$(column 3 | med)" != n/a ]; then
  A_COAPRD=$(calc 'sprintf("%.0f", v)' v="$(column 3 | med)")
  A_COAPRD_US=$(column 4 | med)
  awk '{ print $1 / $3, $4 / $2 }' "$WORK/a.rounds" >"$WORK/a.ratios"
  A_RATIO=$(calc 'sprintf("%.2f", v)' v="$(awk '{ print $1 }' "$WORK/a.ratios" | med)")
  A_US_RATIO=$(calc 'sprintf("%.2f", v)' v="$(awk '{ print $2 }' "$WORK/a.ratios" | med)")
  echo "rounds: ratio per round $(awk '{ s = s (NR > 1 ? " " : "") sprintf("%.2f", $1) } END { print s }' "$WORK/a.ratios"); median $A_RATIO"
fi
fi

# --- (b) Update throughput -----------------------------------------------
# For each size a fresh fotad; the registrations may take minutes at
# 100,000 (libcoap walks every session for each new peer), so they get
# MEM_DURATION, and the Updates start together once every rd_load process
# has registered all its sessions (the go file).
if part b; then
echo
for n in $UPD_SIZES; do
  per=$(((UPD_TOTAL + n - 1) / n))
  echo "## (b) Update: $n sessions; each registers, then, once all have, sends $per Updates (for at most $UPD_DURATION s)"
  rm -f "$WORK/b$n.go"
  fotad_start "b$n"
  cpu0=$(cpu_s "$FOTAD_PID")
  RP_MARK=register
  RP_GO="$WORK/b$n.go"
  run_procs "b$n" "$n" 0 0 "--phase both --updates-per-client $per \
--max-inflight $INFLIGHT --adaptive --duration $UPD_DURATION \
--setup-duration $MEM_DURATION --go-file $WORK/b$n.go"
  RP_MARK=
  RP_GO=
  fotad_alive
  cpu2=$(cpu_s "$FOTAD_PID")
  B_LOAD_CPU=$(load_cpu $RUN_FILES)
  report "fotad register ($n)" register $RUN_FILES
  reg=$R_RATE
  regd=$R_OK
  report "fotad update ($n)" update $RUN_FILES
  B_FOTAD_CPU=$(calc 'b - a' a="$cpu0" b="$cpu2")
  us=$(calc '(n + 0 > 0 ? sprintf("%.0f", (c - m) * 1e6 / n) : "n/a")' c="$cpu2" m="$RP_MARK_CPU" n="$R_OK")
  echo "fotad: $B_FOTAD_CPU s CPU in both phases; $us us per update"
  B_TABLE="$B_TABLE $n:$regd:$R_RATE:$us:$reg"
  fotad_stop
done
fi

# --- (c) Memory per registered device ------------------------------------
if part c; then
echo
echo "## (c) Resident memory per registered device, at $MEM_SIZES devices"
fotad_start c
sleep 1
RSS0=$(rss_kb "$FOTAD_PID")
cpu0=$(cpu_s "$FOTAD_PID")
echo "fotad VmRSS before: $RSS0 kB"
have=0
regd_sum=0
C_LOAD_CPU=0
step=0
for n in $MEM_SIZES; do
  [ "$n" -gt "$have" ] || continue
  add=$((n - have))
  # Held: each device keeps its socket, so its own server session, while
  # the next step adds more.
  run_procs "m$step" "$add" "$have" 1 \
    "--phase register --max-inflight $INFLIGHT --adaptive \
    --duration $MEM_DURATION"
  fotad_alive
  C_LOAD_CPU=$(calc 'a + b' a="$C_LOAD_CPU" b="$(load_cpu $RUN_FILES)")
  report "fotad register (+$add)" register $RUN_FILES
  have=$n
  sleep 1
  # fotad's own count: a request that timed out at the client may still
  # have registered.
  regd=$(fotad_registered)
  regd_sum=$((regd_sum + R_OK))
  [ -n "$regd" ] || regd=$regd_sum
  rss=$(rss_kb "$FOTAD_PID")
  per=$(calc '(n + 0 > 0 ? sprintf("%.0f", (b - a) * 1024 / n) : "n/a")' a="$RSS0" b="$rss" n="$regd")
  echo "VmRSS with $regd devices: $rss kB: $per bytes per device"
  MEM_TABLE="$MEM_TABLE $n:$regd:$per:$R_RATE"
  step=$((step + 1))
done
C_FOTAD_CPU=$(calc 'b - a' a="$cpu0" b="$(cpu_s "$FOTAD_PID")")
stop_loads
fotad_stop
fi

# --- Summary -------------------------------------------------------------
# verdict VALUE OP TARGET: "met", "MISSED" or "-" when there is no value.
verdict() {
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "n/a" || v == "") {
      print "-"
      exit
    }
    if (op == ">=")
      ok = (v + 0 >= t + 0)
    else
      ok = (v + 0 <= t + 0)
    print (ok ? "met" : "MISSED")
  }'
}
row() {
  printf '%-46s %11s %11s %7s %11s %7s\n' "$@"
}
echo
echo "## Summary"
row figure fotad coap-rd ratio target result
row "registrations/s, $REG_CLIENTS sockets, SQLite" "$A_FOTAD" "$A_COAPRD" \
  "$A_RATIO" ">=0.6" "$(verdict "$A_RATIO" '>=' 0.6)"
row "  CPU us per registration (ratio coap/fotad)" "$A_FOTAD_US" \
  "$A_COAPRD_US" "$A_US_RATIO" "-" "-"
for e in $B_TABLE; do
  n=${e%%:*}
  r=${e#*:}
  regd=${r%%:*}
  r=${r#*:}
  rate=${r%%:*}
  r=${r#*:}
  us=${r%%:*}
  reg=${r#*:}
  target="-"
  res="-"
  if [ "$n" -eq 10000 ]; then
    target=">=20000"
    res=$(verdict "$rate" '>=' 20000)
  fi
  [ "$regd" -ge "$n" ] || res="short"
  row "updates/s, $n sessions ($regd registered)" "$rate" "n/a" "-" \
    "$target" "$res"
  row "  CPU us per update" "$us" "-" "-" "-" "-"
  row "  registrations/s of those sessions" "$reg" "-" "-" "-" "-"
done
for e in $MEM_TABLE; do
  n=${e%%:*}
  r=${e#*:}
  regd=${r%%:*}
  r=${r#*:}
  per=${r%%:*}
  rr=${r#*:}
  target="-"
  res="-"
  if [ "$n" -ge 100000 ]; then
    target="<=2048"
    res=$(verdict "$per" '<=' 2048)
  fi
  [ "$regd" -ge "$n" ] || res="short"
  row "RSS bytes/device at $n ($regd registered)" "$per" "-" "-" \
    "$target" "$res"
  row "  registrations/s while growing to $n" "$rr" "-" "-" "-" "-"
done
printf '%-46s %s\n' "fotad CPU s in (a) / (b) / (c)" \
  "$A_FOTAD_CPU / $B_FOTAD_CPU / $C_FOTAD_CPU"
printf '%-46s %s\n' "rd_load CPU s in (a) / (b) / (c)" \
  "$A_LOAD_CPU / $B_LOAD_CPU / $C_LOAD_CPU"
[ -z "$B_COAPRD_NOTE" ] || echo "note: $B_COAPRD_NOTE"
for e in $MEM_TABLE; do
  n=${e%%:*}
  r=${e#*:}
  regd=${r%%:*}
  [ "$regd" -ge "$n" ] ||
    echo "note: \"short\": only $regd of $n devices registered within ${MEM_DURATION} s (MEM_DURATION); the figure is per registered device"
done
exit 0
