# Helpers shared by the rollout tests (sourced after lib.sh): packages
# built as MCUboot images (fotad-sim installs the header's version),
# rollouts created and driven through the API, JSON read with jq.

command -v jq >/dev/null 2>&1 || bail "jq is needed (packaging/build-deps)"
MKMCUBOOT="$top_builddir/tests/tools/mkmcuboot"
[ -x "$MKMCUBOOT" ] || bail "$MKMCUBOOT is not built (make check builds it)"
[ -x "$FOTAD_SIM" ] || bail "fotad-sim not built"

# Every simulator started by sim, so that the trap ends them all.
SIMS=
sim() {
  sim_start --reboot-time 1 -d 300 "$@"
  SIMS="$SIMS $SIM_PID"
}
stop_sims() {
  for p in $SIMS; do kill -KILL "$p" 2>/dev/null; done
  SIM_PID=
}
trap 'stop_sims; cleanup' EXIT

body() { echo "$1" | sed '$d'; }
# jt FILTER: the JSON on stdin makes FILTER true (no input fails).
jt() { jq -n -e "input | ($1)" >/dev/null; }
status() { echo "$1" | tail -n 1; }
get() { "$CURL" -sS -m 10 "$BASE$1"; }
post() {
  http POST "$1" -H 'Content-Type: application/json' -d "${2:-{\}}"
}

# package COMPONENT VERSION [SIZE]: uploads an MCUboot image of that
# version (MAJOR.MINOR.REVISION) and prints its id.
package() {
  head -c "${3:-8192}" /dev/urandom >"$WORK/body-$1-$2"
  "$MKMCUBOOT" -V "$2+0" "$WORK/body-$1-$2" "$WORK/$1-$2.img" ||
    bail "mkmcuboot failed"
  "$CURL" -sS -m 20 -T "$WORK/$1-$2.img" \
    "$BASE/api/v1/packages?component=$1&version=$2" | jq -r .id
}

# create SPEC: creates a rollout and prints its id (empty on failure).
create() {
  out=$(post /api/v1/rollouts "$1")
  [ "$(status "$out")" = 201 ] || {
    diag "create: $out"
    return 1
  }
  body "$out" | jq -r .id
}
action() { post "/api/v1/rollouts/$1/$2"; }
rollout() { get "/api/v1/rollouts/$1"; }
# field ID JQ: one value of the rollout's view.
field() { rollout "$1" | jq -r "$2"; }
state_is() { [ "$(field "$1" .state)" = "$2" ]; }
total_is() { [ "$(field "$1" ".totals.$2")" = "$3" ]; }
# finished ID: no device of the rollout is pending, active or retrying.
settled() {
  [ "$(field "$1" '.totals.pending + .totals.active + .totals.retry')" = 0 ]
}
# jobs ID QUERY: the rollout's devices (one page of up to 1000).
jobs() { get "/api/v1/rollouts/$1/jobs?limit=1000${2:-}"; }
# members_in ID STATE: how many devices of the rollout are in STATE.
members_in() { jobs "$1" "&state=$2" | jq '.jobs | length'; }
# version_count COMPONENT VERSION: devices running it, as component
# tracking read it.
version_count() {
  get /api/v1/components |
    jq "[.versions[] | select(.component == \"$1\" and
      .version == \"$2\") | .devices] | add // 0"
}
# at_least N COMPONENT VERSION: N devices or more run it.
at_least() { [ "$(version_count "$2" "$3")" -ge "$1" ]; }
