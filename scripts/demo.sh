#!/usr/bin/env bash
# scripts/demo.sh — try mailferry in one minute, against a throwaway local
# Dovecot with ~300 generated messages in 7 folders (examples/sandbox.rs).
#
#   scripts/demo.sh            # Maildir goes to ./demo-maildir
#   DEMO_MESSAGES=1000 scripts/demo.sh
#
# Needs Dovecot installed (not running): apt-get install dovecot-imapd dovecot-pop3d
set -euo pipefail

MESSAGES=${DEMO_MESSAGES:-300}
DEST=${DEMO_MAILDIR:-$PWD/demo-maildir}
STATE=${DEMO_STATE:-$PWD/demo-state.db}
REPO=$(cd "$(dirname "$0")/.." && pwd)

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B= G= R= N=; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
fail() { printf '%serror:%s %s\n' "$R" "$N" "$*" >&2; exit 1; }

# ------------------------------------------------------------------ 0. needs
step "Checking what the demo needs"
missing=()
[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
[ -e /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
[ -e /usr/lib/dovecot/pop3 ] || missing+=(dovecot-pop3d)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    fail "missing: ${pkgs% }. Install it first (Debian/Ubuntu; Dovecot need not run):
    sudo apt-get install -y ${pkgs% }"
fi
command -v cargo >/dev/null 2>&1 || fail "cargo not found: install Rust (https://rustup.rs)"
echo "Dovecot $(/usr/sbin/dovecot --version 2>/dev/null | cut -d' ' -f1), openssl, cargo: ok"

# ------------------------------------------------------------------ 1. build
# An up-to-date release build is there: use it (cargo only checks). Else the
# dev profile builds much faster than release (no LTO) and is plenty for 300
# messages.
cd "$REPO"
target=${CARGO_TARGET_DIR:-$REPO/target}
profile=debug
if [ -x "$target/release/mailferry" ] && [ -x "$target/release/examples/sandbox" ] &&
    [ -z "$(find src examples tests/it/common Cargo.toml Cargo.lock -newer "$target/release/mailferry" -print -quit 2>/dev/null)" ] &&
    [ -z "$(find examples tests/it/common -newer "$target/release/examples/sandbox" -print -quit 2>/dev/null)" ]; then
    profile=release
fi
if [ $profile = release ]; then
    step "Building mailferry (release build is up to date)"
    cargo build --release --bin mailferry --example sandbox
else
    step "Building mailferry (debug: fastest from here; the first build takes a few minutes)"
    cargo build --bin mailferry --example sandbox
fi
MF=$target/$profile/mailferry
SB=$target/$profile/examples/sandbox

# ------------------------------------------------------------------ 2. server
step "Starting a throwaway Dovecot with $MESSAGES generated messages"
tmp=$(mktemp -d)
SB_PID=
cleanup() {
    if [ -n "$SB_PID" ]; then
        exec 8>&- # the sandbox stops Dovecot when its stdin closes
        wait "$SB_PID" 2>/dev/null || true
        SB_PID=
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkfifo "$tmp/in"
"$SB" --messages "$MESSAGES" <"$tmp/in" >"$tmp/sandbox.json" 2>"$tmp/sandbox.log" &
SB_PID=$!
exec 8>"$tmp/in"
for _ in $(seq 1 600); do
    [ -s "$tmp/sandbox.json" ] && break
    kill -0 "$SB_PID" 2>/dev/null || { cat "$tmp/sandbox.log" >&2; fail "the sandbox did not start"; }
    sleep 0.1
done
[ -s "$tmp/sandbox.json" ] || fail "the sandbox was not ready after 60 s"
json=$(head -n 1 "$tmp/sandbox.json")
jget() { printf '%s' "$json" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
URL=$(jget imaps)
CA=$(jget ca_file)
export MAILFERRY_PASSWORD
MAILFERRY_PASSWORD=$(jget password)
sed -n 's/^sandbox: //p' "$tmp/sandbox.log" | grep -v serving
echo "folders: $(printf '%s' "$json" | sed 's/.*"folders":{\([^}]*\)}.*/\1/; s/"//g; s/,/, /g')"
echo "server:  $URL (password in \$MAILFERRY_PASSWORD, CA $CA)"

# ------------------------------------------------------------------ 3. fetch
if [ -e "$DEST" ] || [ -e "$STATE" ]; then
    step "Removing the previous demo's $DEST and $STATE"
    rm -rf "$DEST" "$STATE" "$STATE-wal" "$STATE-shm"
fi
run_fetch() {
    printf '%s$ mailferry fetch --from %s --to %s --ca-file %s --state %s%s\n' \
        "$G" "$URL" "$DEST" "$CA" "$STATE" "$N"
    local rc=0
    "$MF" fetch --from "$URL" --to "$DEST" --ca-file "$CA" --state "$STATE" || rc=$?
    [ $rc = 0 ] || fail "mailferry fetch exited $rc"
}
step "Fetching everything over IMAPS into $DEST"
run_fetch

step "Fetching again: nothing new, so nothing is copied"
run_fetch

# ------------------------------------------------------------------ 4. look
step "What is in $DEST"
total=0
while IFS= read -r dir; do
    n=$({ find "$dir/cur" "$dir/new" -maxdepth 1 -type f 2>/dev/null || true; } | wc -l)
    total=$((total + n))
    name=INBOX
    [ "$dir" = "$DEST" ] || name=${dir#"$DEST"/}
    printf '  %-28s %6d messages\n' "$name" "$n"
done < <(find "$DEST" -type d -name cur -printf '%h\n' | sort)
printf '  %-28s %6d messages, %s on disk\n' "total" "$total" "$(du -sh "$DEST" | cut -f1)"
sample=$({ find "$DEST/cur" "$DEST/new" -maxdepth 1 -type f 2>/dev/null || true; } | head -n 1)
if [ -n "$sample" ]; then
    echo "  one message: $sample"
    sed -n '/^Subject:/{p;q}' "$sample" | sed 's/^/    /'
fi

# ------------------------------------------------------------------ 5. stop
step "Stopping the server"
cleanup
echo "Done. The Maildir stays in $DEST (and the state in $STATE); remove them when you like."
