#!/usr/bin/env bash
# bench/migrate.sh: aggregate messages/s of one `mailferry migrate` over N
# accounts against the same N accounts pushed one after another with
# `mailferry push` (what a shell loop around imapsync does), on throwaway
# Dovecots (examples/sandbox.rs): one source with N users, and one empty
# target per contender, so both copy into empty accounts.
#
#   bench/migrate.sh                          # 20 accounts x 200 messages
#   bench/migrate.sh --accounts 50 --messages 100 --jobs 8
#   MAILFERRY_BENCH_PROFILE=dev bench/migrate.sh --accounts 10   # no optimised build
#
# Prints both wall times, messages/s and the ratio; checks that both
# copied every message. Needs Dovecot installed (not running).
set -euo pipefail

ACCOUNTS=20 MESSAGES=200 JOBS=8 PER_HOST=16 CONNECTIONS=2 SEED=7
while [ $# -gt 0 ]; do
    case $1 in
    --accounts) ACCOUNTS=$2; shift 2 ;;
    --messages) MESSAGES=$2; shift 2 ;; # per account
    --jobs) JOBS=$2; shift 2 ;;
    --per-host-connections) PER_HOST=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
PROFILE=${MAILFERRY_BENCH_PROFILE:-release}
case $PROFILE in dev) OUT=$TARGET_DIR/debug ;; *) OUT=$TARGET_DIR/$PROFILE ;; esac
MF=$OUT/mailferry SB=$OUT/examples/sandbox
echo "building (cargo build --profile $PROFILE)" >&2
cargo build --profile "$PROFILE" --locked --bin mailferry --example sandbox >&2

WORK=$(mktemp -d /var/tmp/mailferry-migrate-bench.XXXXXX)
PIDS=()
cleanup() {
    for fd in 7 8 9; do eval "exec $fd>&-" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start FD NAME ARGS...: a sandbox serving until FD is closed; its JSON
# line ends up in $WORK/NAME.json.
start() {
    local fd=$1 name=$2
    shift 2
    mkfifo "$WORK/$name.in"
    "$SB" "$@" <"$WORK/$name.in" >"$WORK/$name.json" 2>"$WORK/$name.log" &
    PIDS+=($!)
    eval "exec $fd>\"$WORK/$name.in\""
    for _ in $(seq 1 6000); do
        [ -s "$WORK/$name.json" ] && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "sandbox $name not ready" >&2
    exit 1
}
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/$1.json" "$2"; }

echo "starting the source ($ACCOUNTS accounts x $MESSAGES messages) and two empty targets" >&2
start 7 src --users "$ACCOUNTS" --messages "$MESSAGES" --seed "$SEED" --max-size 65536
start 8 dst1 --users "$ACCOUNTS" --messages 0 --separator /
start 9 dst2 --users "$ACCOUNTS" --messages 0 --separator /
cat "$(jget src ca_file)" "$(jget dst1 ca_file)" "$(jget dst2 ca_file)" >"$WORK/ca.pem"
export SRC_PW DST_PW
SRC_PW=$(jget src password) DST_PW=$(jget dst1 password)
SRC=$(jget src imaps_template) DST1=$(jget dst1 imaps_template) DST2=$(jget dst2 imaps_template)
TOTAL=$((ACCOUNTS * MESSAGES))
BYTES=$(jget src wire_bytes)

users() { python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["users"]))' "$WORK/src.json"; }
{
    echo "id,source,target,source_secret,target_secret"
    for u in $(users); do
        echo "$u,${SRC/\{user\}/$u},${DST1/\{user\}/$u},env:SRC_PW,env:DST_PW"
    done
} >"$WORK/accounts.csv"

now() { date +%s.%N; }
copied_of() { python3 -c 'import json,sys
t=0
for l in open(sys.argv[1]):
    e=json.loads(l)
    if e.get("event")=="summary": t+=e["copied"]
print(t)' "$1"; }

echo "migrate: --jobs $JOBS --per-host-connections $PER_HOST --connections $CONNECTIONS" >&2
t0=$(now)
"$MF" migrate --manifest "$WORK/accounts.csv" --ca-file "$WORK/ca.pem" \
    --state-dir "$WORK/migrate-state" --jobs "$JOBS" --per-host-connections "$PER_HOST" \
    --connections "$CONNECTIONS" --json >"$WORK/migrate.jsonl" 2>"$WORK/migrate.err" ||
    { echo "migrate failed:" >&2; cat "$WORK/migrate.err" >&2; exit 1; }
t1=$(now)
M_SECS=$(echo "$t1 - $t0" | bc -l)
M_COPIED=$(copied_of "$WORK/migrate.jsonl")

echo "sequential: one push per account, --connections $CONNECTIONS" >&2
: >"$WORK/seq.jsonl"
t0=$(now)
for u in $(users); do
    MAILFERRY_FROM_PASSWORD=$SRC_PW MAILFERRY_TO_PASSWORD=$DST_PW \
        "$MF" push --from "${SRC/\{user\}/$u}" --to "${DST2/\{user\}/$u}" \
        --ca-file "$WORK/ca.pem" --state "$WORK/seq-state/$u.db" \
        --connections "$CONNECTIONS" --json >>"$WORK/seq.jsonl" 2>>"$WORK/seq.err" ||
        { echo "push $u failed:" >&2; cat "$WORK/seq.err" >&2; exit 1; }
done
t1=$(now)
S_SECS=$(echo "$t1 - $t0" | bc -l)
S_COPIED=$(copied_of "$WORK/seq.jsonl")

[ "$M_COPIED" = "$TOTAL" ] || { echo "migrate copied $M_COPIED of $TOTAL" >&2; exit 1; }
[ "$S_COPIED" = "$TOTAL" ] || { echo "sequential copied $S_COPIED of $TOTAL" >&2; exit 1; }

printf '%s accounts x %s messages (%s messages, %.1f MB on the wire), IMAPS -> IMAPS, %s cores, profile %s\n' \
    "$ACCOUNTS" "$MESSAGES" "$TOTAL" "$(echo "$BYTES / 1000000" | bc -l)" "$(nproc)" "$PROFILE"
printf '| run | wall s | messages/s |\n|---|---|---|\n'
printf '| migrate --jobs %s | %.2f | %.0f |\n' "$JOBS" "$M_SECS" "$(echo "$TOTAL / $M_SECS" | bc -l)"
printf '| push one after another | %.2f | %.0f |\n' "$S_SECS" "$(echo "$TOTAL / $S_SECS" | bc -l)"
printf 'ratio (migrate / sequential messages/s): %.2fx\n' "$(echo "$S_SECS / $M_SECS" | bc -l)"
