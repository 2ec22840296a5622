#!/usr/bin/env bash
# Benchmarks the Salam hub against a bare WebSocket echo server, in one run:
#   (a) echo ceiling: round trips per server CPU-second;
#   (b) hub, closed loop, with persistence: acked messages per server CPU-second, and
#       the ratio hub / echo;
#   (c) hub, open loop at a fixed rate: visitor -> agent latency p50 / p99 / p99.9;
#   (d) hub, idle visitor connections: resident memory per connection at each step.
# The server runs on one core and the load generator on another (taskset); figures
# are per server CPU-second because the machine is shared and wall-clock rates are
# noisy. Prints a markdown table and, with BENCH_UPDATE_DOCS=1 (the default), rewrites
# the table between the bench markers in docs/benchmarks.md.
#
# Usage: bash scripts/bench.sh        (about a minute and a half; see the knobs below)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# Knobs (environment variables).
SECONDS_MEASURED=${BENCH_SECONDS:-10}      # measured window of each throughput run
WARMUP=${BENCH_WARMUP:-2}                  # load before each window
SERVER_CPU=${BENCH_SERVER_CPU:-0}          # core for the server under test
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}        # core for the load generator
ECHO_PORT=${BENCH_ECHO_PORT:-9301}
HUB_PORT=${BENCH_HUB_PORT:-9302}
ECHO_CONNECTIONS=${BENCH_ECHO_CONNECTIONS:-100}
ECHO_WINDOW=${BENCH_ECHO_WINDOW:-8}
RELAY_VISITORS=${BENCH_RELAY_VISITORS:-100}
RELAY_WINDOW=${BENCH_RELAY_WINDOW:-8}
RELAY_AGENTS=${BENCH_RELAY_AGENTS:-1}
LATENCY_RATE=${BENCH_LATENCY_RATE:-1000}
LATENCY_VISITORS=${BENCH_LATENCY_VISITORS:-500}
LATENCY_AGENTS=${BENCH_LATENCY_AGENTS:-2}
LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-10}
IDLE_STEPS=${BENCH_IDLE_STEPS:-1000,5000,10000}
UPDATE_DOCS=${BENCH_UPDATE_DOCS:-1}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}          # 1: use the binaries already built
OUT=${BENCH_OUT:-}                         # keep the JSON results and logs here
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in taskset jq cargo; do
    command -v "$tool" >/dev/null || die "needs $tool"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/salam-bench.XXXXXX")
STARTED_PIDS=()
cleanup() {
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$OUT" ]]; then
        mkdir -p "$OUT" && cp -r "$WORK"/*.json "$WORK"/*.log "$OUT"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Stops one server this script started and waits (at most 10 s) for it to exit.
stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Waits (at most 20 s) until PATTERN appears in FILE while process PID lives.
wait_for() {
    local pattern=$1 file=$2 pid=$3
    for _ in $(seq 200); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "server exited early"; }
        sleep 0.1
    done
    cat "$file" >&2
    die "server did not start within 20 s"
}

loadgen() { taskset -c "$LOADGEN_CPU" "$BIN/salam-loadgen" "$@"; }

# Starts a hub on a fresh data directory; sets HUB_PID, SITE_KEY and PASSWORD.
start_hub() {
    local name=$1 data="$WORK/$1-data"
    mkdir -p "$data"
    # The default rate limit (10 frames/s, burst 40 per connection) protects the hub
    # from one abusive client; a closed-loop benchmark client is exactly that.
    printf '[limits]\nrate_per_sec = 100000\nburst = 100000\n' >"$data/salam.toml"
    taskset -c "$SERVER_CPU" "$BIN/salam" --data "$data" --listen "127.0.0.1:$HUB_PORT" \
        >"$WORK/$name.log" 2>&1 &
    HUB_PID=$!
    STARTED_PIDS+=("$HUB_PID")
    wait_for "is listening" "$WORK/$name.log" "$HUB_PID"
    SITE_KEY=$(grep -o 'pk_[A-Za-z0-9_]*' "$WORK/$name.log" | head -n 1)
    PASSWORD=$(sed -n 's/^ *password: *//p' "$WORK/$name.log" | head -n 1)
    [[ -n "$SITE_KEY" && -n "$PASSWORD" ]] || die "no demo site key or password in the hub's output"
    # The relay figures measure the hub's own path: the bot is off (BENCH_BOT=1 keeps it).
    if [[ "${BENCH_BOT:-0}" != 1 ]]; then
        local token site_id
        token=$(curl -sf -X POST "http://127.0.0.1:$HUB_PORT/api/login" \
            -H 'content-type: application/json' \
            -d "{\"email\":\"admin@salam.local\",\"password\":\"$PASSWORD\"}" |
            sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
        site_id=$("$BIN/salam" site list --data "$data" | awk -v key="$SITE_KEY" '$1 == key {print $2}')
        curl -sf -X PUT "http://127.0.0.1:$HUB_PORT/api/sites/$site_id/settings" \
            -H "authorization: Bearer $token" -H 'content-type: application/json' \
            -d '{"bot": false}' >/dev/null || die "could not turn the bot off"
    fi
}

# ---- build ---------------------------------------------------------------------------
BIN="$CARGO_TARGET_DIR/release"
if [[ "$SKIP_BUILD" == 1 ]]; then
    log "using the binaries in $BIN"
else
    log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --release --quiet -p salam-hub -p salam-loadgen
fi
for binary in salam salam-echo salam-loadgen; do
    [[ -x "$BIN/$binary" ]] || die "no $BIN/$binary: build it first"
done

# The load generator holds every idle connection open at once.
IDLE_MAX=${IDLE_STEPS##*,}
IDLE_MAX=${IDLE_MAX//[kK]/000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < IDLE_MAX + 200 )); then
    die "ulimit -n is $(ulimit -n); the idle step needs at least $((IDLE_MAX + 200))"
fi

# ---- (a) echo ceiling -----------------------------------------------------------------
log "(a) echo ceiling"
taskset -c "$SERVER_CPU" "$BIN/salam-echo" --listen "127.0.0.1:$ECHO_PORT" \
    >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
STARTED_PIDS+=("$ECHO_PID")
wait_for "is listening" "$WORK/echo.log" "$ECHO_PID"
loadgen echo --addr "127.0.0.1:$ECHO_PORT" --server-pid "$ECHO_PID" \
    --connections "$ECHO_CONNECTIONS" --window "$ECHO_WINDOW" \
    --seconds "$SECONDS_MEASURED" --warmup "$WARMUP" >"$WORK/echo.json"
stop "$ECHO_PID"

# ---- (b) hub throughput and (c) latency -----------------------------------------------
log "(b) hub closed loop: $RELAY_VISITORS visitors x window $RELAY_WINDOW, $RELAY_AGENTS agents"
start_hub relay
loadgen relay --addr "127.0.0.1:$HUB_PORT" --server-pid "$HUB_PID" \
    --site "$SITE_KEY" --password "$PASSWORD" \
    --visitors "$RELAY_VISITORS" --window "$RELAY_WINDOW" --agents "$RELAY_AGENTS" --rate 0 \
    --seconds "$SECONDS_MEASURED" --warmup "$WARMUP" >"$WORK/relay.json"
# The hub's mean group-commit size over (b): writes per SQLite transaction.
MEAN_BATCH=n/a
if command -v curl >/dev/null; then
    MEAN_BATCH=$(curl -s --max-time 5 "http://127.0.0.1:$HUB_PORT/metrics" | awk '
        /^salam_commit_batch_size_sum/ { sum = $2 }
        /^salam_commit_batch_size_count/ { count = $2 }
        END { if (count > 0) printf "%.1f", sum / count; else print "n/a" }') || MEAN_BATCH=n/a
fi

log "(c) hub open loop: $LATENCY_RATE msg/s from $LATENCY_VISITORS visitors, $LATENCY_AGENTS agents"
loadgen relay --addr "127.0.0.1:$HUB_PORT" --server-pid "$HUB_PID" \
    --site "$SITE_KEY" --password "$PASSWORD" \
    --visitors "$LATENCY_VISITORS" --agents "$LATENCY_AGENTS" --rate "$LATENCY_RATE" \
    --seconds "$LATENCY_SECONDS" --warmup "$WARMUP" >"$WORK/latency.json"
stop "$HUB_PID"

# ---- (d) idle connections -----------------------------------------------------------
log "(d) idle visitor connections: $IDLE_STEPS (fresh hub)"
start_hub idle
loadgen idle --addr "127.0.0.1:$HUB_PORT" --server-pid "$HUB_PID" --site "$SITE_KEY" \
    --connections "$IDLE_STEPS" --hold 2 --settle 2 >"$WORK/idle.json"
stop "$HUB_PID"

# ---- the table ----------------------------------------------------------------------
num() { jq -r "$1 // \"n/a\"" "$2"; }
fmt() { # fmt FORMAT VALUE: printf unless the value is missing
    if [[ "$2" == "n/a" || "$2" == "null" ]]; then echo "n/a"; else printf "$1" "$2"; fi
}
for file in echo relay latency; do
    errors=$(jq -r '(.errors // 0) + (.connect_errors // 0)' "$WORK/$file.json")
    [[ "$errors" == 0 ]] || log "warning: $file run had $errors errors: $(jq -r '.first_error // .first_connect_error' "$WORK/$file.json")"
done

echo_rt=$(num .round_trips_per_server_cpu_sec "$WORK/echo.json")
echo_rate=$(num .round_trips_per_sec "$WORK/echo.json")
echo_share=$(num .server_cpu_share "$WORK/echo.json")
hub_acks=$(num .acked_per_server_cpu_sec "$WORK/relay.json")
hub_rate=$(num .acked_per_sec "$WORK/relay.json")
hub_share=$(num .server_cpu_share "$WORK/relay.json")
ratio=$(jq -rn --argjson a "${hub_acks/n\/a/null}" --argjson b "${echo_rt/n\/a/null}" \
    'if $a and $b and $b > 0 then $a / $b else "n/a" end')
ack_p50=$(num .ack_latency.p50_ms "$WORK/relay.json")
ack_p99=$(num .ack_latency.p99_ms "$WORK/relay.json")
lat_rate=$(num .acked_per_sec "$WORK/latency.json")
lat_p50=$(num .latency.p50_ms "$WORK/latency.json")
lat_p99=$(num .latency.p99_ms "$WORK/latency.json")
lat_p999=$(num .latency.p999_ms "$WORK/latency.json")
lat_max=$(num .latency.max_ms "$WORK/latency.json")
lat_lost=$(num .undelivered_in_window "$WORK/latency.json")
lat_share=$(num .server_cpu_share "$WORK/latency.json")

TABLE="$WORK/table.md"
{
    echo "| Measure | Result | Goal |"
    echo "|---|---|---|"
    echo "| (a) Echo ceiling: round trips per server CPU-second | $(fmt %.0f "$echo_rt") ($(fmt %.0f "$echo_rate")/s at $(fmt %.2f "$echo_share") of a core) | |"
    echo "| (b) Hub: acked messages per server CPU-second, closed loop, ${RELAY_VISITORS} visitors × window ${RELAY_WINDOW}, ${RELAY_AGENTS} agent(s) | $(fmt %.0f "$hub_acks") ($(fmt %.0f "$hub_rate")/s at $(fmt %.2f "$hub_share") of a core; ack p50 $(fmt %.1f "$ack_p50") ms, p99 $(fmt %.1f "$ack_p99") ms; mean group commit $MEAN_BATCH writes) | |"
    echo "| (b) Ratio hub / echo | **$(fmt %.3f "$ratio")** | ≥ 0.5 |"
    echo "| (c) Visitor → agent latency at ${LATENCY_RATE} msg/s (${LATENCY_VISITORS} visitors, ${LATENCY_AGENTS} agents, ${LATENCY_SECONDS} s): p50 / p99 / p99.9 / max | $(fmt %.2f "$lat_p50") / $(fmt %.2f "$lat_p99") / $(fmt %.2f "$lat_p999") / $(fmt %.2f "$lat_max") ms (achieved $(fmt %.0f "$lat_rate") msg/s, $(fmt %.2f "$lat_share") of a core, $lat_lost undelivered) | |"
    jq -r '.steps[] | [.connections, .bytes_per_connection, .connects_per_sec, .connects_per_server_cpu_sec, .failed] | @tsv' \
        "$WORK/idle.json" |
        while IFS=$'\t' read -r connections bytes rate per_cpu failed; do
            kib=$(jq -rn --argjson b "${bytes:-null}" 'if $b then $b / 1024 else "n/a" end')
            echo "| (d) Hub RSS per idle visitor connection at ${connections} connections | **$(fmt %.1f "$kib") KiB** (set-up $(fmt %.0f "$rate")/s, $(fmt %.0f "$per_cpu") per server CPU-second, $failed failed) | ≤ 16 KiB |"
        done
} >"$TABLE"

echo
echo "Salam hub benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, server on core $SERVER_CPU, load generator on core $LOADGEN_CPU"
echo
cat "$TABLE"

DOC="$ROOT/docs/benchmarks.md"
BEGIN='<!-- bench:hub-relay:begin -->'
END='<!-- bench:hub-relay:end -->'
if [[ "$UPDATE_DOCS" == 1 && -f "$DOC" ]] && grep -qF "$BEGIN" "$DOC" && grep -qF "$END" "$DOC"; then
    {
        echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bash scripts/bench.sh\`:"
        echo
        cat "$TABLE"
    } >"$WORK/block.md"
    awk -v begin="$BEGIN" -v end="$END" -v block="$WORK/block.md" '
        $0 == begin { print; while ((getline line < block) > 0) print line; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }
    ' "$DOC" >"$WORK/doc.md"
    cat "$WORK/doc.md" >"$DOC"
    log "updated the table in docs/benchmarks.md"
else
    log "docs/benchmarks.md has no bench markers (or BENCH_UPDATE_DOCS=0): table printed only"
fi
