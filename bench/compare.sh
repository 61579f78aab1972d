#!/usr/bin/env bash
# bench/compare.sh — mailferry against its peers, side by side, in one run,
# on a throwaway Dovecot (examples/sandbox.rs) on this machine.
#
#   IMAP → Maildir   mailferry vs mbsync (isync)        full run + no-op rerun
#   POP3 → Maildir   mailferry vs mpop vs getmail6      full run + no-op rerun
#   IMAP → IMAP      mailferry push vs mbsync (IMAP channel) vs imapsync
#                    (if installed; not a Debian package)  full + no-op
#   --large          mailferry vs mbsync, 100,000 small messages: no-op reruns
#
# Every tool starts from an empty target each round; rounds alternate which
# tool goes first. Wall seconds (date +%s.%N) and peak RSS (/usr/bin/time
# -f %M). Output: a Markdown report on stdout and in bench/results-latest.md.
#
# Usage: bench/compare.sh [options]        (bench/compare.sh --help)
# Needs: Debian/Ubuntu with cargo; as root it apt-get installs what is
# missing (dovecot-imapd dovecot-pop3d openssl time isync mpop getmail6).
set -uo pipefail

usage() {
    cat <<'EOF'
Usage: bench/compare.sh [options]

  --messages N         corpus size for the IMAP and POP3 runs [10000, env MESSAGES]
  --rounds R           rounds per tool (full + no-op each) [3, env ROUNDS]
  --seed S             corpus seed [42]
  --big-fraction F     share of 250 KB–5 MB messages [0.0175: ~555 MB per
                       10,000 messages, like shared/research/peers.md;
                       the corpus generator's own default is 0.035]
  --no-imap            skip IMAP → Maildir
  --no-pop3            skip POP3 → Maildir
  --no-push            skip IMAP → IMAP (push; needs the IMAP corpus, so
                       also skipped with --no-imap)
  --no-getmail         skip getmail6 (slow: ~10 ms–100 ms per message)
  --getmail-rounds N   rounds for getmail6 [1]
  --getmail-timeout S  give up a getmail6 run after S seconds [300]
  --large              also: 100,000 messages of at most 4 KB in 7 folders,
                       mailferry vs mbsync, one full fetch each, then R
                       no-op reruns each
  --large-messages N   [100000]     --large-max-size BYTES  [4096]
  --no-install         never apt-get install anything
  --work DIR           scratch dir [/var/tmp/mailferry-bench.PID]; removed at exit
  --keep               keep the scratch dir (targets, configs, logs)
  --out FILE           report file [bench/results-latest.md]
  -h, --help           this text

The page cache is not dropped between runs (the server's mailbox is hot
for every tool alike); `sync` runs before every timed run, untimed, so no
tool pays for another's writeback.
EOF
}

MESSAGES=${MESSAGES:-10000}
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-42}
BIG_FRACTION=${BIG_FRACTION:-0.0175}
DO_IMAP=1
DO_POP3=1
DO_PUSH=1
DO_GETMAIL=1
GETMAIL_ROUNDS=1
GETMAIL_TIMEOUT=300
DO_LARGE=0
LARGE_MESSAGES=100000
LARGE_MAX_SIZE=4096
INSTALL=1
KEEP=0
WORK=
OUT=

while [ $# -gt 0 ]; do
    case $1 in
    --messages) MESSAGES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --big-fraction) BIG_FRACTION=$2; shift ;;
    --no-imap) DO_IMAP=0 ;;
    --no-pop3) DO_POP3=0 ;;
    --no-push) DO_PUSH=0 ;;
    --no-getmail) DO_GETMAIL=0 ;;
    --getmail-rounds) GETMAIL_ROUNDS=$2; shift ;;
    --getmail-timeout) GETMAIL_TIMEOUT=$2; shift ;;
    --large) DO_LARGE=1 ;;
    --large-messages) LARGE_MESSAGES=$2; shift ;;
    --large-max-size) LARGE_MAX_SIZE=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --work) WORK=$2; shift ;;
    --keep) KEEP=1 ;;
    --out) OUT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
OUT=${OUT:-$REPO/bench/results-latest.md}
WORK=${WORK:-/var/tmp/mailferry-bench.$$}
# When the last run of this script on this file system removed its files.
CLEANED_STAMP=$(dirname "$WORK")/mailferry-bench.cleaned
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
# MAILFERRY_BENCH_PROFILE=profiling measures a non-LTO optimised build
# (minutes faster to build; the figures differ little).
PROFILE=${MAILFERRY_BENCH_PROFILE:-release}
MF=$TARGET_DIR/$PROFILE/mailferry
SB=$TARGET_DIR/$PROFILE/examples/sandbox
RAW=$WORK/runs.tsv
NOTES=$WORK/notes.md
T_START=$(date +%s)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
note() { printf -- '- %s\n' "$*" >>"$NOTES"; log "$*"; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup

# Two sandbox slots: 8 serves the corpus, 7 an empty push target.
declare -A SB_PIDS
# sandbox_stop [FD]: EOF on the sandbox's stdin: it stops Dovecot, removes its dir.
sandbox_stop() {
    local fd=${1:-8}
    local pid=${SB_PIDS[$fd]:-}
    [ -n "$pid" ] || return 0
    eval "exec $fd>&-"
    local i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "SB_PIDS[$fd]"
}
cleanup() {
    sandbox_stop 7
    sandbox_stop 8
    if [ "$KEEP" = 1 ]; then
        rm -rf "$WORK/trash"
        log "scratch dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    touch "$CLEANED_STAMP" 2>/dev/null || true
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

mkdir -p "$WORK" || die "cannot create $WORK"
chmod 755 "$WORK" # getmail6 delivers as nobody when we are root
: >"$RAW"
: >"$NOTES"

# ---------------------------------------------------------------- install

APT_UPDATED=0
apt_install() {
    [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
    if [ "$APT_UPDATED" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >"$WORK/apt.log" 2>&1
}
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
# need COMMAND PACKAGE...: true if COMMAND is there, installing if it can.
need() {
    local cmd=$1
    shift
    have "$cmd" && return 0
    apt_install "$@" || true
    have "$cmd"
}

need cargo || die "cargo not found (install Rust: https://rustup.rs)"
if ! have dovecot || [ ! -e /usr/lib/dovecot/pop3 ] || [ ! -e /usr/lib/dovecot/imap ]; then
    apt_install dovecot-imapd dovecot-pop3d ||
        die "Dovecot missing: apt-get install dovecot-imapd dovecot-pop3d"
fi
need openssl openssl || die "openssl missing: apt-get install openssl"
TIME=/usr/bin/time
if [ ! -x $TIME ]; then
    apt_install time || true
fi
[ -x $TIME ] || { TIME=; note "peak RSS not measured: /usr/bin/time not available"; }

HAVE_MBSYNC=0 HAVE_MPOP=0 HAVE_GETMAIL=0 HAVE_IMAPSYNC=0
if need mbsync isync; then HAVE_MBSYNC=1; else note "skipped: mbsync (isync) not available"; fi
if [ "$DO_IMAP" = 1 ] && [ "$DO_PUSH" = 1 ]; then
    # imapsync is not packaged by Debian: used only if already installed.
    if have imapsync; then HAVE_IMAPSYNC=1; else note "skipped: imapsync not installed (not a Debian package; https://imapsync.lamiral.info)"; fi
fi
if [ "$DO_POP3" = 1 ]; then
    if need mpop mpop; then HAVE_MPOP=1; else note "skipped: mpop not available"; fi
    if [ "$DO_GETMAIL" = 1 ]; then
        if need getmail getmail6; then HAVE_GETMAIL=1; else note "skipped: getmail6 not available"; fi
    fi
fi

# ---------------------------------------------------------------- build

log "building mailferry and the sandbox (cargo build --profile $PROFILE)"
if ! cargo build --profile "$PROFILE" --locked --bin mailferry --example sandbox >"$WORK/build.log" 2>&1; then
    tail -30 "$WORK/build.log" >&2
    die "cargo build --release failed"
fi

# ---------------------------------------------------------------- sandbox

SB_JSON=
TSB_JSON=
# sandbox_start NAME ARGS...: starts the corpus sandbox (slot 8), waits for
# its JSON line (SB_JSON). target_start NAME ARGS...: the same in slot 7
# (TSB_JSON), for an empty push target.
sandbox_start() { sandbox_start_in 8 "$@" && SB_JSON=$SLOT_JSON; }
target_start() { sandbox_start_in 7 "$@" && TSB_JSON=$SLOT_JSON; }
sandbox_start_in() {
    local fd=$1 name=$2
    shift 2
    local fifo=$WORK/$name.stdin json=$WORK/$name.json
    rm -f "$fifo" "$json"
    mkfifo "$fifo"
    log "starting the sandbox: $*"
    "$SB" "$@" <"$fifo" >"$json" 2>"$WORK/$name.log" &
    local pid=$!
    SB_PIDS[$fd]=$pid
    eval "exec $fd>\"\$fifo\"" # held open for as long as the sandbox should serve
    local i
    for i in $(seq 1 6000); do
        if [ -s "$json" ] && [ "$(tail -c 2 "$json")" = "}" ]; then
            SLOT_JSON=$(head -n 1 "$json")
            log "sandbox ready: $(grep -E 'generated|delivered|indexed' "$WORK/$name.log" |
                sed 's/^sandbox: //' | paste -sd ';' -)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$WORK/$name.log" >&2
            die "the sandbox exited before it was ready"
        fi
        sleep 0.1
    done
    die "the sandbox was not ready after 600 s"
}
# jget KEY [JSON]: a string or number field of a sandbox's JSON line
# (default: the corpus sandbox's).
jget() {
    local v j=${2-$SB_JSON}
    v=$(printf '%s' "$j" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p")
    [ -n "$v" ] || v=$(printf '%s' "$j" | sed -n "s/.*\"$1\":\([0-9.][0-9.]*\).*/\1/p")
    printf '%s' "$v"
}

# ---------------------------------------------------------------- measuring

count_msgs() {
    [ -d "$1" ] || { echo 0; return; }
    find "$1" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l
}
median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }

# measure JOB TOOL ROUND PHASE TARGET CMD...: one timed run, appended to RAW.
# Sets M_RC, M_SECS.
measure() {
    local job=$1 tool=$2 round=$3 phase=$4 target=$5
    shift 5
    local base=$WORK/logs/$job.$tool.$round.$phase
    mkdir -p "$WORK/logs"
    sync
    local t0 t1 rss=""
    t0=$(date +%s.%N)
    if [ -n "$TIME" ]; then
        $TIME -f %M -o "$base.rss" "$@" >"$base.out" 2>"$base.err" </dev/null
    else
        "$@" >"$base.out" 2>"$base.err" </dev/null
    fi
    M_RC=$?
    t1=$(date +%s.%N)
    M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    [ -n "$TIME" ] && rss=$(tail -n 1 "$base.rss" 2>/dev/null | tr -dc 0-9)
    local n
    n=$(count_msgs "$target")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$job" "$tool" "$round" "$phase" \
        "$M_SECS" "${rss:-}" "$M_RC" "$n" >>"$RAW"
    log "  $job $tool round $round $phase: ${M_SECS} s, rss ${rss:-?} KB, exit $M_RC, $n messages in target"
    if [ "$M_RC" != 0 ]; then
        log "  $tool exited $M_RC; stderr:"
        head -n 15 "$base.err" | sed 's/^/      /' >&2
    fi
}

failed_note_done=""
note_failure() { # TOOL JOB PHASE
    case " $failed_note_done " in *" $1/$2/$3 "*) return ;; esac
    failed_note_done="$failed_note_done $1/$2/$3"
    local err
    err=$(head -n 3 "$WORK/logs/$2.$1.$ROUND.$3.err" 2>/dev/null | tr '\n' ' ' | cut -c1-300)
    note "$1 $2 $3 failed (exit $M_RC): ${err:-no stderr}"
}

# note_warnings TOOL JOB PHASE: a successful run that still said something
# on stderr (mbsync: "incomplete header; skipping"), once per tool and job.
warned_done=""
note_warnings() {
    local f=$WORK/logs/$2.$1.$ROUND.$3.err
    [ -s "$f" ] || return 0
    case " $warned_done " in *" $1/$2 "*) return ;; esac
    warned_done="$warned_done $1/$2"
    note "$1 $2 $3 exited 0 but wrote $(wc -l <"$f") stderr line(s), first: \`$(head -n 1 "$f" | cut -c1-200)\`"
}

# ---------------------------------------------------------------- tools

# Each tool: prep_TOOL JOB (empty target + state + config), cmd_TOOL JOB
# (sets CMD, the command line to time).
# Globals from the sandbox: URL_IMAPS URL_POP3S PORT_IMAPS PORT_POP3S CA PW.
tgt() { echo "$WORK/target-$1-$2"; } # JOB TOOL

# discard PATH...: moves each PATH into $WORK/trash, emptied at exit,
# instead of deleting it. On ext4 without a journal (the / of the machine
# this was written on) every inode allocation skips the inodes deleted in
# the last 60 s, one by one; removing a 10,000-file target just before the
# next timed run made every file that run created pay for that scan, which
# added seconds to whichever tool came next. A rename frees nothing.
TRASH_N=0
# settle: before a job's first timed run, waits until 65 s have passed since
# the last mass deletion this script knows of (cargo's incremental build
# removes files of its own), for the reason given above.
#
# A previous run's cleanup (its targets and the sandbox's mail: about
# 100,000 files) counts for 305 s: while new files keep dirtying the inode
# tables, ext4 treats inodes deleted in the last 300 s as recent, and a run
# started 100 s after another one measured mpop 50% slower in its first
# rounds. Its cleanup time is kept in $CLEANED_STAMP.
QUIET_SINCE=$(date +%s) # this runs after the build
settle() {
    local wait=$((QUIET_SINCE + 65 - $(date +%s)))
    if [ -e "$CLEANED_STAMP" ]; then
        local since=$(($(stat -c %Y "$CLEANED_STAMP") + 305 - $(date +%s)))
        [ "$since" -le "$wait" ] || wait=$since
    fi
    [ "$wait" -gt 0 ] || return 0
    log "waiting $wait s for the file system to forget recent deletions (see discard)"
    sleep "$wait"
}
discard() {
    local p
    mkdir -p "$WORK/trash"
    for p in "$@"; do
        [ -e "$p" ] || continue
        TRASH_N=$((TRASH_N + 1))
        mv "$p" "$WORK/trash/$TRASH_N" || rm -rf "$p"
    done
}

prep_mailferry() {
    discard "$(tgt "$1" mailferry)" "$WORK/mailferry-$1.db"*
}
cmd_mailferry() {
    local url=$URL_IMAPS
    [ "$1" = pop3 ] && url=$URL_POP3S
    CMD=(env MAILFERRY_PASSWORD="$PW" "$MF" fetch --from "$url" --to "$(tgt "$1" mailferry)"
        --ca-file "$CA" --state "$WORK/mailferry-$1.db")
}

prep_mbsync() {
    local t
    t=$(tgt "$1" mbsync)
    discard "$t"
    mkdir -p "$t"
    # isync 1.4: SSLType (1.5 renamed it TLSType, keeping the old name).
    # Default PipelineDepth (unlimited) and default FSync yes: durable.
    cat >"$WORK/mbsyncrc-$1" <<EOF
IMAPAccount src
Host localhost
Port $PORT_IMAPS
User alice
Pass $PW
SSLType IMAPS
CertificateFile $CA

IMAPStore src-remote
Account src

MaildirStore local
SubFolders Maildir++
Inbox $t

Channel bench
Far :src-remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
CopyArrivalDate yes
EOF
}
cmd_mbsync() { CMD=(mbsync -c "$WORK/mbsyncrc-$1" -q bench); }

prep_mpop() {
    local t
    t=$(tgt "$1" mpop)
    discard "$t" "$WORK/mpop-$1.uidls"
    mkdir -p "$t/cur" "$t/new" "$t/tmp"
    cat >"$WORK/mpoprc-$1" <<EOF
defaults
account bench
host localhost
port $PORT_POP3S
user alice
password $PW
tls on
tls_starttls off
tls_trust_file $CA
delivery maildir $t
keep on
uidls_file $WORK/mpop-$1.uidls
EOF
    chmod 600 "$WORK/mpoprc-$1"
}
cmd_mpop() { CMD=(mpop -C "$WORK/mpoprc-$1" -q bench); }

prep_getmail() {
    local t gd
    t=$(tgt "$1" getmail)
    gd=$WORK/getmail-$1
    discard "$t" "$gd"
    mkdir -p "$t/cur" "$t/new" "$t/tmp" "$gd"
    # getmail6 refuses to deliver as root; as root it delivers as nobody.
    local user_line=""
    if [ "$(id -u)" = 0 ]; then
        chown -R nobody "$t"
        user_line="user = nobody"
    fi
    cat >"$gd/getmailrc" <<EOF
[retriever]
type = SimplePOP3SSLRetriever
server = localhost
port = $PORT_POP3S
username = alice
password = $PW
ca_certs = $CA

[destination]
type = Maildir
path = $t/
$user_line

[options]
read_all = false
delete = false
verbose = 0
EOF
    chmod 600 "$gd/getmailrc"
}
cmd_getmail() {
    CMD=(timeout "$GETMAIL_TIMEOUT" getmail --getmaildir="$WORK/getmail-$1" --rcfile=getmailrc)
}

# rotate N WORDS...: the words rotated left by N.
# ---------------------------------------------------------------- push
# IMAP → IMAP: the corpus sandbox is the source; every timed run gets a
# fresh empty target Dovecot with the other separator ('/'), so folder
# mapping is part of the work. Globals from target_start: T_PORT T_CA T_PW T_MD.

pushprep_mailferry() {
    rm -f "$WORK/mailferry-push.db"*
    cat "$CA" "$T_CA" >"$WORK/push-ca.pem"
}
pushcmd_mailferry() {
    CMD=(env MAILFERRY_FROM_PASSWORD="$PW" MAILFERRY_TO_PASSWORD="$T_PW" "$MF" push
        --from "$URL_IMAPS" --to "imaps://alice@localhost:$T_PORT"
        --ca-file "$WORK/push-ca.pem" --state "$WORK/mailferry-push.db")
}
pushprep_mbsync() {
    rm -rf "$WORK/mbsync-push-state"
    mkdir -p "$WORK/mbsync-push-state"
    cat >"$WORK/mbsyncrc-push" <<EOF
IMAPAccount src
Host localhost
Port $PORT_IMAPS
User alice
Pass $PW
SSLType IMAPS
CertificateFile $CA

IMAPStore src-remote
Account src

IMAPAccount dst
Host localhost
Port $T_PORT
User alice
Pass $T_PW
SSLType IMAPS
CertificateFile $T_CA

IMAPStore dst-remote
Account dst

Channel bench
Far :src-remote:
Near :dst-remote:
Patterns *
Create Near
Sync Pull
SyncState $WORK/mbsync-push-state/
CopyArrivalDate yes
EOF
}
pushcmd_mbsync() { CMD=(mbsync -c "$WORK/mbsyncrc-push" -q bench); }
pushprep_imapsync() { :; }
pushcmd_imapsync() {
    CMD=(imapsync --nolog --noreleasecheck
        --host1 localhost --port1 "$PORT_IMAPS" --ssl1 --user1 alice --password1 "$PW"
        --sslargs1 "SSL_ca_file=$CA"
        --host2 localhost --port2 "$T_PORT" --ssl2 --user2 alice --password2 "$T_PW"
        --sslargs2 "SSL_ca_file=$T_CA")
}

bench_push() {
    local tools=(mailferry) r tool
    [ "$HAVE_MBSYNC" = 1 ] && tools+=(mbsync)
    [ "$HAVE_IMAPSYNC" = 1 ] && tools+=(imapsync)
    settle
    for ((r = 1; r <= ROUNDS; r++)); do
        ROUND=$r
        log "push: round $r of $ROUNDS"
        for tool in $(rotate $((r - 1)) "${tools[@]}"); do
            target_start "push-target" --messages 0 --separator /
            T_PORT=$(jget imaps_port "$TSB_JSON")
            T_CA=$(jget ca_file "$TSB_JSON")
            T_PW=$(jget password "$TSB_JSON")
            T_MD=$(jget maildir "$TSB_JSON")
            "pushprep_$tool"
            "pushcmd_$tool"
            measure push "$tool" "$r" full "$T_MD" "${CMD[@]}"
            if [ "$M_RC" != 0 ]; then
                note_failure "$tool" push full
            else
                note_warnings "$tool" push full
                measure push "$tool" "$r" noop "$T_MD" "${CMD[@]}"
                [ "$M_RC" = 0 ] || note_failure "$tool" push noop
            fi
            discard "$T_MD" # or the sandbox deletes the 10,000 files
            sandbox_stop 7
        done
    done
}

rotate() {
    local n=$1
    shift
    local a=("$@") k=${#a[@]} i
    for ((i = 0; i < k; i++)); do printf '%s ' "${a[$(((i + n) % k))]}"; done
}

# bench_job JOB TOOLS...: R rounds of (clean, full, no-op) per tool.
bench_job() {
    local job=$1
    shift
    local tools=("$@") r tool
    settle
    for ((r = 1; r <= ROUNDS; r++)); do
        ROUND=$r
        log "$job: round $r of $ROUNDS"
        for tool in $(rotate $((r - 1)) "${tools[@]}"); do
            if [ "$tool" = getmail ] && [ "$r" -gt "$GETMAIL_ROUNDS" ]; then continue; fi
            "prep_$tool" "$job"
            "cmd_$tool" "$job"
            measure "$job" "$tool" "$r" full "$(tgt "$job" "$tool")" "${CMD[@]}"
            if [ "$M_RC" != 0 ]; then
                note_failure "$tool" "$job" full
                [ "$tool" = getmail ] && [ "$M_RC" = 124 ] &&
                    note "getmail6 timed out after ${GETMAIL_TIMEOUT} s (--getmail-timeout)"
                continue # a no-op rerun after a failed full run means nothing
            fi
            note_warnings "$tool" "$job" full
            measure "$job" "$tool" "$r" noop "$(tgt "$job" "$tool")" "${CMD[@]}"
            [ "$M_RC" = 0 ] || note_failure "$tool" "$job" noop
            discard "$(tgt "$job" "$tool")"
        done
    done
}

# bench_large: one full fetch per tool, then R alternating no-op reruns.
bench_large() {
    local job=large tools=(mailferry) r tool
    [ "$HAVE_MBSYNC" = 1 ] && tools+=(mbsync)
    settle
    ROUND=1
    for tool in "${tools[@]}"; do
        "prep_$tool" "$job"
        "cmd_$tool" "$job"
        measure "$job" "$tool" 1 full "$(tgt "$job" "$tool")" "${CMD[@]}"
        if [ "$M_RC" = 0 ]; then note_warnings "$tool" "$job" full; else note_failure "$tool" "$job" full; fi
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        ROUND=$r
        for tool in $(rotate $((r - 1)) "${tools[@]}"); do
            # Only after a successful full run.
            awk -F'\t' -v t="$tool" '$1=="large" && $2==t && $4=="full" && $7==0 {ok=1} END {exit !ok}' "$RAW" ||
                continue
            "cmd_$tool" "$job"
            measure "$job" "$tool" "$r" noop "$(tgt "$job" "$tool")" "${CMD[@]}"
            [ "$M_RC" = 0 ] || note_failure "$tool" "$job" noop
        done
    done
    for tool in "${tools[@]}"; do discard "$(tgt "$job" "$tool")"; done
}

use_sandbox() {
    URL_IMAPS=$(jget imaps)
    URL_POP3S=$(jget pop3s)
    PORT_IMAPS=$(jget imaps_port)
    PORT_POP3S=$(jget pop3s_port)
    CA=$(jget ca_file)
    PW=$(jget password)
}

declare -A CORPUS
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$DO_IMAP" = 1 ]; then
    sandbox_start imap --messages "$MESSAGES" --seed "$SEED" --big-fraction "$BIG_FRACTION"
    use_sandbox
    CORPUS[imap]="$(jget messages) messages, $(awk -v b="$(jget bytes)" 'BEGIN {printf "%.0f", b / 1e6}') MB in $(printf '%s' "$SB_JSON" | sed 's/.*"folders":{\([^}]*\)}.*/\1/' | tr ',' '\n' | grep -c .) folders"
    tools=(mailferry)
    [ "$HAVE_MBSYNC" = 1 ] && tools+=(mbsync)
    bench_job imap "${tools[@]}"
    if [ "$DO_PUSH" = 1 ]; then
        CORPUS[push]="${CORPUS[imap]} → an empty Dovecot whose separator is '/' (source: '.')"
        bench_push
    fi
    discard "$(jget maildir)"
    sandbox_stop
fi

if [ "$DO_POP3" = 1 ]; then
    sandbox_start pop3 --messages "$MESSAGES" --seed "$SEED" --big-fraction "$BIG_FRACTION" --inbox-only
    use_sandbox
    CORPUS[pop3]="$(jget messages) messages, $(awk -v b="$(jget bytes)" 'BEGIN {printf "%.0f", b / 1e6}') MB in INBOX"
    tools=(mailferry)
    [ "$HAVE_MPOP" = 1 ] && tools+=(mpop)
    [ "$HAVE_GETMAIL" = 1 ] && tools+=(getmail)
    bench_job pop3 "${tools[@]}"
    discard "$(jget maildir)"
    sandbox_stop
fi

if [ "$DO_LARGE" = 1 ]; then
    sandbox_start large --messages "$LARGE_MESSAGES" --seed "$SEED" --max-size "$LARGE_MAX_SIZE"
    use_sandbox
    CORPUS[large]="$(jget messages) messages of at most $LARGE_MAX_SIZE bytes, $(awk -v b="$(jget bytes)" 'BEGIN {printf "%.0f", b / 1e6}') MB in $(printf '%s' "$SB_JSON" | sed 's/.*"folders":{\([^}]*\)}.*/\1/' | tr ',' '\n' | grep -c .) folders"
    bench_large
    discard "$(jget maildir)"
    sandbox_stop
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report

version() {
    case $1 in
    mailferry) "$MF" --version 2>/dev/null | head -n 1 ;;
    mbsync) mbsync --version 2>/dev/null | head -n 1 ;;
    mpop) mpop --version 2>/dev/null | head -n 1 ;;
    getmail) getmail --version 2>/dev/null | head -n 1 ;;
    imapsync) imapsync --version 2>/dev/null | head -n 1 ;;
    dovecot) /usr/sbin/dovecot --version 2>/dev/null | head -n 1 ;;
    esac
}
# mstat JOB TOOL PHASE FIELD: median of a field over successful runs.
mstat() {
    awk -F'\t' -v j="$1" -v t="$2" -v p="$3" -v f="$4" \
        '$1==j && $2==t && $4==p && $7==0 && $f!="" {print $f}' "$RAW" | median
}
nruns() { awk -F'\t' -v j="$1" -v t="$2" -v p="$3" '$1==j && $2==t && $4==p' "$RAW" | wc -l; }
nfail() { awk -F'\t' -v j="$1" -v t="$2" -v p="$3" '$1==j && $2==t && $4==p && $7!=0' "$RAW" | wc -l; }
fmt_s() { [ -n "$1" ] && awk -v v="$1" 'BEGIN {printf "%.2f s", v}' || printf '—'; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else printf "—"}' || printf '—'; }
# cell JOB TOOL PHASE: median seconds, or FAILED.
cell() {
    local n f m
    n=$(nruns "$1" "$2" "$3")
    f=$(nfail "$1" "$2" "$3")
    m=$(mstat "$1" "$2" "$3" 5)
    if [ "$n" = 0 ]; then
        printf '—'
    elif [ "$2" = getmail ] && [ "$3" = full ] &&
        awk -F'\t' -v j="$1" '$1==j && $2=="getmail" && $4=="full" && $7==124 {t=1} END {exit !t}' "$RAW"; then
        printf 'timed out after %s s (%s delivered)' "$GETMAIL_TIMEOUT" \
            "$(awk -F'\t' -v j="$1" '$1==j && $2=="getmail" && $4=="full" && $7==124 {print $8; exit}' "$RAW")"
    elif [ "$f" = "$n" ]; then
        printf 'FAILED'
    elif [ "$f" != 0 ]; then
        printf '%s (%s of %s FAILED)' "$(fmt_s "$m")" "$f" "$n"
    else
        fmt_s "$m"
    fi
}
counts_cell() { # JOB TOOL EXPECTED
    local c
    c=$(awk -F'\t' -v j="$1" -v t="$2" '$1==j && $2==t && $4=="full" && $7==0 {print $8}' "$RAW" | sort -u | paste -sd/ -)
    if [ -z "$c" ]; then
        printf '—'
    elif [ "$c" = "$3" ]; then
        printf '%s ✓' "$c"
    else
        printf '%s ✗ (want %s)' "$c" "$3"
    fi
}

JOBNAME_imap="IMAP → Maildir"
JOBNAME_pop3="POP3 → Maildir"
JOBNAME_large="IMAP → Maildir, large"
JOBNAME_push="IMAP → IMAP (push)"

{
    echo "# mailferry vs peers — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Generated by \`bench/compare.sh\` ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ', dirty'))."
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| CPU | $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
    echo "| memory | $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) |"
    echo "| kernel | $(uname -sr) |"
    echo "| scratch fs | $(df -T "$WORK" | awk 'NR==2 {print $2}') ($WORK) |"
    echo "| load average | start $LOAD_START, end $LOAD_END |"
    echo "| server | $(version dovecot) (Dovecot, loopback, TLS: IMAPS/POP3S) |"
    for t in mailferry mbsync mpop getmail imapsync; do
        v=$(version $t)
        [ -n "$v" ] && echo "| $t | $v |"
    done
    echo
    for job in imap push pop3 large; do
        [ -n "${CORPUS[$job]:-}" ] || continue
        echo "- corpus $job: ${CORPUS[$job]} (seed $SEED$([ "$job" != large ] && echo ", big fraction $BIG_FRACTION"))"
    done
    echo "- rounds: $ROUNDS per tool$([ "$HAVE_GETMAIL" = 1 ] && echo " (getmail6: $GETMAIL_ROUNDS)"); median wall seconds; each round from an empty target, tools alternating who goes first"
    echo
    echo "| job | tool | full run | no-op rerun | peer/mailferry full | peer/mailferry no-op | peak RSS full | messages in target |"
    echo "|---|---|---|---|---|---|---|---|"
    for job in imap push pop3 large; do
        [ -n "${CORPUS[$job]:-}" ] || continue
        jn=JOBNAME_$job
        expected=$MESSAGES
        [ $job = large ] && expected=$LARGE_MESSAGES
        mf_full=$(mstat $job mailferry full 5)
        mf_noop=$(mstat $job mailferry noop 5)
        for tool in mailferry mbsync mpop getmail imapsync; do
            [ "$(nruns $job $tool full)" != 0 ] || continue
            full=$(cell $job $tool full)
            noop=$(cell $job $tool noop)
            rss=$(mstat $job $tool full 6)
            rss=$([ -n "$rss" ] && awk -v k="$rss" 'BEGIN {printf "%.0f MB", k / 1024}' || echo —)
            if [ $tool = mailferry ]; then
                rf="—" rn="—"
            else
                rf=$(ratio "$(mstat $job $tool full 5)" "$mf_full")
                rn=$(ratio "$(mstat $job $tool noop 5)" "$mf_noop")
            fi
            [ $job = large ] && full="$full (1 run)"
            echo "| ${!jn} | $tool | $full | $noop | $rf | $rn | $rss | $(counts_cell $job $tool "$expected") |"
        done
    done
    echo
    echo "Ratios above 1× mean mailferry is faster. \"messages in target\" counts files in"
    echo "cur/ and new/ of every folder after each successful full run."
    echo
    echo "## Notes"
    echo
    echo "- Page cache not dropped between runs (the server's mailbox is hot for every tool alike);"
    echo "  \`sync\` before every timed run, untimed, so that no tool pays for another's writeback."
    echo "- mbsync keeps its defaults (FSync yes, unlimited PipelineDepth): durable against durable."
    echo "- Peers' notes and how they were configured: bench/README.md."
    load=${LOAD_START%% *}
    if awk -v l="$load" 'BEGIN {exit !(l > 0.5)}'; then
        echo "- **The machine was busy at the start (load $LOAD_START): the numbers are noisy.**"
    fi
    cat "$NOTES"
    echo
    echo "## Every run"
    echo
    echo "| job | tool | round | phase | seconds | peak RSS (KB) | exit | messages in target |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$RAW"
    echo
    echo "Total bench time: $(($(date +%s) - T_START)) s."
} >"$WORK/report.md"

cp "$WORK/report.md" "$OUT"
cat "$WORK/report.md"
log "report written to $OUT"
