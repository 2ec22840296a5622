#!/usr/bin/env bash
# A login flood (issue 12): WORKERS wrong-password logins at once, each worker sending
# the next as soon as the last is answered, for SECONDS, against a fresh hub per mode
# (salam-loadgen login-flood):
#
#   single   one client address, one existing account (the first admin): what the
#            per-address and per-account throttles are for;
#   spread   every attempt from its own X-Forwarded-For address and for its own unknown
#            e-mail (a botnet behind a trusted proxy): no throttle applies, so the cap
#            on password hashes at once is what is measured.
#
# Figures: the hub's RSS before the flood, its peak (read every 50 ms) and SETTLE
# seconds after the last attempt; GET /healthz and GET /api/me (the admin's token)
# latency during the flood, one probe every 20 ms each; how the attempts were answered
# (401, 429, other, errors, timeouts) and their share.
#
# The hub is given `auth.trusted_proxies = ["127.0.0.1/32"]` when it knows the setting
# (`salam defaults` lists it), so that X-Forwarded-For names the client. A hub without
# it refuses unknown settings, so the key is left out there and every attempt comes
# from 127.0.0.1 (one address in both modes; the spread mode still spreads e-mails).
#
# The hub runs on core BENCH_SERVER_CPU and the load generator on BENCH_LOADGEN_CPU,
# as in the other benchmarks. An unprotected hub takes gigabytes during the flood: it
# is stopped (TERM, then KILL) after each mode and when the script exits.
#
# Usage: bash scripts/bench-login-flood.sh      (about 50 s of runs after the build)
#        BENCH_HUB=/path/to/salam bash scripts/bench-login-flood.sh   (another build)
#        BENCH_WORKERS=200 BENCH_SECONDS=15 BENCH_SETTLE=5 BENCH_MODES=single,spread
#        BENCH_OUT=DIR keeps the JSON results and logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORKERS=${BENCH_WORKERS:-200}
SECONDS_FLOOD=${BENCH_SECONDS:-15}
SETTLE=${BENCH_SETTLE:-5}
MODES=${BENCH_MODES:-single,spread}
PORT=${BENCH_HUB_PORT:-9322}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}
HUB=${BENCH_HUB:-}
OUT=${BENCH_OUT:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf 'bench-login-flood: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
for tool in taskset jq cargo curl; do
    command -v "$tool" >/dev/null || die "needs $tool"
done

WORK=$(mktemp -d)
HUB_PID=
# Stops the hub: TERM, then KILL after 10 s (a hub deep in password hashes may not
# finish its shutdown soon).
stop_hub() {
    [[ -n "$HUB_PID" ]] || return 0
    kill -TERM "$HUB_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$HUB_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
    HUB_PID=
}
cleanup() {
    stop_hub
    if [[ -n "$OUT" ]]; then
        mkdir -p "$OUT" && cp -r "$WORK"/. "$OUT"/ && log "results and logs in $OUT"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -n "$HUB" ]]; then
    [[ -x "$HUB" ]] || die "BENCH_HUB=$HUB is not an executable"
    log "building the load generator (release); the hub is $HUB"
    cargo build -q --release -p salam-loadgen --bin salam-loadgen
    HUB_LABEL=$HUB
else
    log "building the hub and the load generator (release)"
    cargo build -q --release -p salam-hub --bin salam -p salam-loadgen --bin salam-loadgen
    HUB="$CARGO_TARGET_DIR/release/salam"
    HUB_LABEL="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates ':!crates/loadgen' || echo ' + uncommitted changes')"
fi
LOADGEN="$CARGO_TARGET_DIR/release/salam-loadgen"

DEFAULTS=$("$HUB" --data "$WORK/defaults" defaults) || die "\`$HUB defaults\` failed"
if grep -q '^trusted_proxies *=' <<<"$DEFAULTS"; then
    CONFIG='[auth]
trusted_proxies = ["127.0.0.1/32"]'
    log "the hub trusts 127.0.0.1 as its proxy: X-Forwarded-For names the client"
else
    CONFIG=
    log "the hub has no auth.trusted_proxies: every attempt comes from 127.0.0.1"
fi

# flood MODE: a fresh hub, its first admin signed in, one flood; the result in
# $WORK/MODE.json ({"failed": REASON} when the load generator failed).
flood() {
    local mode=$1 data="$WORK/$1-data"
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "port $PORT is in use; pick another with BENCH_HUB_PORT"
    fi
    mkdir -p "$data"
    printf '%s\n' "$CONFIG" >"$data/salam.toml"
    taskset -c "$SERVER_CPU" "$HUB" --data "$data" --listen "127.0.0.1:$PORT" \
        >"$WORK/$mode.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 300); do
        grep -q "is listening" "$WORK/$mode.log" && break
        kill -0 "$HUB_PID" 2>/dev/null || { cat "$WORK/$mode.log" >&2; die "$mode: the hub exited"; }
        sleep 0.1
    done
    grep -q "is listening" "$WORK/$mode.log" || die "$mode: the hub did not start within 30 s"
    local email password token
    email=$(sed -n 's/^ *e-mail: *//p' "$WORK/$mode.log" | head -n 1)
    password=$(sed -n 's/^ *password: *//p' "$WORK/$mode.log" | head -n 1)
    [[ -n "$email" && -n "$password" ]] || die "$mode: no admin e-mail or password in the hub's output"
    token=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/login" -H 'content-type: application/json' \
        -d "$(jq -nc --arg email "$email" --arg password "$password" '{$email, $password}')" |
        jq -r .token)
    [[ -n "$token" && "$token" != null ]] || die "$mode: the admin could not sign in"
    local target=(--spread)
    [[ "$mode" == single ]] && target=("--email=$email")
    log "$mode: $WORKERS workers for $SECONDS_FLOOD s"
    # `=`: a token may start with `-`.
    if taskset -c "$LOADGEN_CPU" "$LOADGEN" login-flood --addr "127.0.0.1:$PORT" \
        --concurrency "$WORKERS" --duration "$SECONDS_FLOOD" --settle "$SETTLE" \
        --pid "$HUB_PID" "--token=$token" "${target[@]}" \
        >"$WORK/$mode.json" 2>"$WORK/$mode.loadgen.log"; then
        cat "$WORK/$mode.loadgen.log" >&2
    else
        cat "$WORK/$mode.loadgen.log" >&2
        jq -n --arg reason "$(tail -n 1 "$WORK/$mode.loadgen.log")" '{failed: $reason}' \
            >"$WORK/$mode.json"
        log "warning: $mode failed"
    fi
    stop_hub
}

IFS=, read -r -a RUNS <<<"$MODES"
for mode in "${RUNS[@]}"; do
    case "$mode" in
    single | spread) flood "$mode" ;;
    *) die "unknown mode $mode (BENCH_MODES: single, spread)" ;;
    esac
done

# row LABEL FILTER: one table row, a column per mode.
defs='def ms: . * 10 | round / 10; def pct: . * 1000 | round / 10 | tostring + " %";
      def lat: "\(.p50_ms | ms) / \(.p99_ms | ms) / \(.max_ms | ms)";'
row() {
    local label=$1 filter=$2 cells=""
    for mode in "${RUNS[@]}"; do
        cells+=" $(jq -r "$defs if .failed then \"failed: \(.failed)\" else ($filter) end" "$WORK/$mode.json") |"
    done
    printf '| %s |%s\n' "$label" "$cells"
}
{
    printf '| figure (%s workers, %s s) |' "$WORKERS" "$SECONDS_FLOOD"
    for mode in "${RUNS[@]}"; do printf ' %s |' "$mode"; done
    printf '\n|---|'
    for _ in "${RUNS[@]}"; do printf -- '---|'; done
    printf '\n'
    row "RSS before / peak / ${SETTLE} s after (MiB)" \
        '"\(.rss_mib.before) / \(.rss_mib.peak) / \(.rss_mib.after)"'
    row "RSS growth at the peak (MiB)" '.rss_mib.growth'
    row "\`GET /healthz\` during the flood p50 / p99 / max (ms)" '.healthz.latency_ms | lat'
    row "\`GET /healthz\` probes (not answered 200)" \
        '"\(.healthz.latency_ms.count) (\(.healthz.failures))"'
    row "\`GET /api/me\` during the flood p50 / p99 / max (ms)" '.me.latency_ms | lat'
    row "login attempts (per second)" '"\(.counts.attempts) (\(.attempts_per_sec | ms))"'
    row "answered 429" '.shares.too_many | pct'
    row "answered 401" '.shares.unauthorized | pct'
    row "other statuses; errors; timeouts" \
        '"\(.counts.other | to_entries | map("\(.key): \(.value)") | join(", ") | if . == "" then "none" else . end); \(.counts.errors); \(.counts.timeouts)"'
    row "login latency p50 / p99 (ms)" '"\(.login_ms.p50_ms | ms) / \(.login_ms.p99_ms | ms)"'
    row "flood, first attempt to last answer (s)" '.flood_secs | ms'
} >"$WORK/table.md"
echo
echo "Hub: $HUB_LABEL; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
cat "$WORK/table.md"
