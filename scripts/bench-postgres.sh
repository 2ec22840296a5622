#!/usr/bin/env bash
# The hub on PostgreSQL against the hub on SQLite (issue 13), back to back in one run:
#
#   relay     closed loop, 100 visitors x 8 messages awaiting their ack, 1 agent:
#             relays per server CPU-second, where the server is the hub AND, on
#             PostgreSQL, the database server's processes that work for it;
#   latency   open loop at BENCH_LATENCY_RATE msg/s (1,000) with idle visitors
#             connected: visitor -> agent p50 / p99 / p99.9 / max.
#
# The same workload as scripts/bench.sh's Salam runs (see docs/benchmarks.md, "Hub
# relay"). The hub runs on core BENCH_SERVER_CPU and the load generator on
# BENCH_LOADGEN_CPU; the PostgreSQL server is the one already running at
# BENCH_POSTGRES_URL (default SALAM_TEST_POSTGRES_URL, else
# postgres://salam:salam@127.0.0.1:5432/postgres): its processes are not pinned (they
# are shared, and this script changes nothing about them). Each PostgreSQL hub gets a
# fresh database, dropped at the end.
#
# PostgreSQL's CPU counted as the server's: `utime + stime` (/proc/PID/stat) of the
# backends connected to the hub's database (its writer, its readers, its single-hub
# claim) and of the server's WAL writer, checkpointer and background writer, read by
# salam-loadgen (`--also-cpu-of`) over exactly the measured window, like the hub's.
# The shared processes also serve any other database of the server at the time (other
# test runs), and short-lived autovacuum workers are not counted.
#
# Usage: bash scripts/bench-postgres.sh              (about 1.5 minutes of runs)
#        BENCH_QUICK=1 bash scripts/bench-postgres.sh (3 s windows, ~40 s of runs)
# Prints the table and, with BENCH_UPDATE_DOCS=1 (the default), rewrites it between the
# bench:postgres markers in docs/benchmarks.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    q_seconds=3 q_warmup=1 q_latency_idle=1000
else
    q_seconds=10 q_warmup=2 q_latency_idle=10000
fi
STORES=${BENCH_STORES:-sqlite,postgres}       # which stores, in this order
SECONDS_MEASURED=${BENCH_SECONDS:-$q_seconds}
WARMUP=${BENCH_WARMUP:-$q_warmup}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}
HUB_PORT=${BENCH_HUB_PORT:-9305}
RELAY_VISITORS=${BENCH_RELAY_VISITORS:-100}
RELAY_WINDOW=${BENCH_RELAY_WINDOW:-8}
RELAY_AGENTS=${BENCH_RELAY_AGENTS:-1}
LATENCY_RATE=${BENCH_LATENCY_RATE:-1000}
LATENCY_VISITORS=${BENCH_LATENCY_VISITORS:-500}
LATENCY_AGENTS=${BENCH_LATENCY_AGENTS:-2}
LATENCY_IDLE=${BENCH_LATENCY_IDLE:-$q_latency_idle}
POSTGRES_URL=${BENCH_POSTGRES_URL:-${SALAM_TEST_POSTGRES_URL:-postgres://salam:salam@127.0.0.1:5432/postgres}}
UPDATE_DOCS=${BENCH_UPDATE_DOCS:-1}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
PROFILE=${BENCH_PROFILE:-release}
OUT=${BENCH_OUT:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
unset SALAM_DATABASE_URL # set per hub below

log() { printf 'bench-postgres: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in taskset jq cargo curl psql; do
    command -v "$tool" >/dev/null || die "needs $tool"
done
wants() { [[ ",$STORES," == *",$1,"* ]]; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/salam-bench-pg.XXXXXX")
STARTED_PIDS=()
DATABASES=()
cleanup() {
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for db in "${DATABASES[@]}"; do
        psql -q "$POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    if [[ -n "$OUT" ]]; then
        mkdir -p "$OUT" && cp "$WORK"/*.json "$WORK"/*.log "$WORK"/*.md "$OUT"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

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

wait_for() {
    local pattern=$1 file=$2 pid=$3
    for _ in $(seq 300); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "hub exited early"; }
        sleep 0.1
    done
    cat "$file" >&2
    die "hub did not start within 30 s"
}

if (exec 3<>"/dev/tcp/127.0.0.1/$HUB_PORT") 2>/dev/null; then
    die "port $HUB_PORT is in use; pick another with BENCH_HUB_PORT"
fi

BIN="$CARGO_TARGET_DIR/$PROFILE"
if [[ "$SKIP_BUILD" == 1 ]]; then
    log "using the binaries in $BIN"
else
    log "building $PROFILE binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --profile "$PROFILE" --quiet -p salam-hub -p salam-loadgen
fi
for binary in salam salam-loadgen; do
    [[ -x "$BIN/$binary" ]] || die "no $BIN/$binary: build it first"
done
if wants postgres; then
    psql -qAt "$POSTGRES_URL" -c 'SELECT 1' >/dev/null ||
        die "cannot reach PostgreSQL at BENCH_POSTGRES_URL (is the server running?)"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= LATENCY_IDLE + LATENCY_VISITORS + 200)) ||
    die "ulimit -n is $(ulimit -n); the latency run needs $((LATENCY_IDLE + LATENCY_VISITORS + 200))"

# The PostgreSQL processes that work for database DB: its backends and the server's
# shared writers (comma-separated pids).
pg_pids() {
    psql -qAt "$POSTGRES_URL" -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
        WHERE (datname = '$1' AND pid <> pg_backend_pid())
           OR backend_type IN ('walwriter', 'checkpointer', 'background writer')"
}

# cpu_of PIDS: their utime + stime so far, in clock ticks.
cpu_of() {
    local total=0 pid fields
    for pid in ${1//,/ }; do
        fields=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a f <<<"$fields"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# start_hub STORE: a hub on a fresh data directory, on SQLite or on a fresh PostgreSQL
# database; the demo site's bot off. Sets HUB_PID, DB ("" on SQLite) and SERVER_ARGS.
start_hub() {
    local store=$1 data="$WORK/$1-data"
    mkdir -p "$data"
    printf '[limits]\nrate_per_sec = 100000\nburst = 100000\nvisitor_rate_per_sec = 100000\nvisitor_burst = 100000\nip_rate_per_sec = 10000000\nip_burst = 10000000\nmax_connections_per_ip = 1000000\n[routing]\ndefault_capacity = 1000000\n[metrics]\ntoken = "salam-bench"\n' >"$data/salam.toml"
    DB=""
    local env=()
    if [[ "$store" == postgres ]]; then
        DB="salam_bench_$(date +%s)_$$"
        psql -q "$POSTGRES_URL" -c "CREATE DATABASE $DB" >/dev/null
        DATABASES+=("$DB")
        # The admin URL with the database's name in place of its own.
        env=("SALAM_DATABASE_URL=${POSTGRES_URL%/*}/$DB")
    fi
    env "${env[@]}" taskset -c "$SERVER_CPU" "$BIN/salam" --data "$data" \
        --listen "127.0.0.1:$HUB_PORT" >"$WORK/$store.log" 2>&1 &
    HUB_PID=$!
    STARTED_PIDS+=("$HUB_PID")
    wait_for "is listening" "$WORK/$store.log" "$HUB_PID"
    local site_key email password token site_id
    site_key=$(grep -o 'pk_[A-Za-z0-9_]*' "$WORK/$store.log" | head -n 1)
    email=$(sed -n 's/^ *e-mail: *//p' "$WORK/$store.log" | head -n 1)
    password=$(sed -n 's/^ *password: *//p' "$WORK/$store.log" | head -n 1)
    [[ -n "$site_key" && -n "$email" && -n "$password" ]] ||
        die "no demo site key, admin e-mail or password in the hub's output"
    token=$(curl -sf -X POST "http://127.0.0.1:$HUB_PORT/api/login" \
        -H 'content-type: application/json' \
        -d "$(jq -nc --arg email "$email" --arg password "$password" '{$email, $password}')" |
        jq -r .token)
    site_id=$(env "${env[@]}" "$BIN/salam" site list --data "$data" |
        awk -v key="$site_key" '$1 == key {print $2}')
    curl -sf -X PUT "http://127.0.0.1:$HUB_PORT/api/sites/$site_id/settings" \
        -H "authorization: Bearer $token" -H 'content-type: application/json' \
        -d '{"bot": false}' >/dev/null || die "could not turn the bot off"
    SERVER_ARGS=(--protocol salam "--site=$site_key" "--email=$email" "--password=$password")
}

loadgen() { taskset -c "$LOADGEN_CPU" "$BIN/salam-loadgen" "$@"; }

# measure NAME ARGS...: one load-generator run against the hub (and, on PostgreSQL, its
# database's processes), its JSON in $WORK/NAME.json, and the share of the server CPU
# the database's processes used over the whole run in $WORK/NAME.split.
measure() {
    local name=$1
    shift
    local also=() pids="" hub_before pg_before
    if [[ -n "$DB" ]]; then
        pids=$(pg_pids "$DB")
        also=("--also-cpu-of=$pids")
    fi
    hub_before=$(cpu_of "$HUB_PID")
    pg_before=$(cpu_of "$pids")
    log "$name: salam-loadgen $1 (PostgreSQL pids: ${pids:-none})"
    if loadgen "$@" "${also[@]}" --server-pid "$HUB_PID" "${SERVER_ARGS[@]}" \
        >"$WORK/$name.json" 2>"$WORK/$name.loadgen.log"; then
        tail -n 3 "$WORK/$name.loadgen.log" | sed 's/^/    /' >&2
    else
        cat "$WORK/$name.loadgen.log" >&2
        jq -n --arg reason "$(tail -n 1 "$WORK/$name.loadgen.log")" '{failed: $reason}' \
            >"$WORK/$name.json"
        log "warning: $name failed"
    fi
    local hub_used=$(($(cpu_of "$HUB_PID") - hub_before)) pg_used=$(($(cpu_of "$pids") - pg_before))
    awk -v hub="$hub_used" -v pg="$pg_used" \
        'BEGIN { if (hub + pg > 0) printf "%.2f", pg / (hub + pg); else print "n/a" }' \
        >"$WORK/$name.split"
}

STARTED_AT=$(date +%s)
IFS=, read -r -a STORE_LIST <<<"$STORES"
declare -A BATCH
for store in "${STORE_LIST[@]}"; do
    log "---- $store"
    start_hub "$store"
    # A short run first, so that the hub's reader connections are open before the
    # PostgreSQL processes are listed (and both stores see the same history).
    measure "$store-prime" relay --addr "127.0.0.1:$HUB_PORT" --visitors "$RELAY_VISITORS" \
        --window "$RELAY_WINDOW" --agents "$RELAY_AGENTS" --rate 0 --seconds 1 --warmup 0
    measure "$store-relay" relay --addr "127.0.0.1:$HUB_PORT" --visitors "$RELAY_VISITORS" \
        --window "$RELAY_WINDOW" --agents "$RELAY_AGENTS" --rate 0 \
        --seconds "$SECONDS_MEASURED" --warmup "$WARMUP"
    BATCH[$store]=$(curl -s --max-time 5 -H 'authorization: Bearer salam-bench' \
        "http://127.0.0.1:$HUB_PORT/metrics" | awk '
        /^salam_commit_batch_size_sum/ { sum = $2 }
        /^salam_commit_batch_size_count/ { count = $2 }
        END { if (count > 0) printf "%.1f", sum / count; else print "n/a" }') || BATCH[$store]=n/a
    measure "$store-latency" relay --addr "127.0.0.1:$HUB_PORT" --visitors "$LATENCY_VISITORS" \
        --agents "$LATENCY_AGENTS" --rate "$LATENCY_RATE" --idle "$LATENCY_IDLE" \
        --seconds "$SECONDS_MEASURED" --warmup "$WARMUP"
    stop "$HUB_PID"
done
log "all runs done in $(($(date +%s) - STARTED_AT)) s"

# ---- the table ----------------------------------------------------------------------------
get() {
    local file="$WORK/$1.json"
    [[ -s "$file" ]] || { echo n/a; return 0; }
    jq -e '.failed' "$file" >/dev/null 2>&1 && { echo failed; return 0; }
    jq -r "($2) // \"n/a\"" "$file" 2>/dev/null || echo n/a
}
num() { [[ "$1" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
fmt() { if num "$2"; then printf "$1" "$2"; else echo "$2"; fi; }
ratio() { if num "$1" && num "$2" && awk "BEGIN { exit !($2 > 0) }"; then awk "BEGIN { printf \"%.2f\", $1 / $2 }"; else echo "—"; fi; }
pg_share() { cat "$WORK/$1.split" 2>/dev/null || echo n/a; }

# row LABEL FORMAT RUN FILTER: SQLite, PostgreSQL and PostgreSQL / SQLite.
row() {
    local label=$1 format=$2 run=$3 filter=$4 lite pg
    lite=$(get "sqlite-$run" "$filter")
    pg=$(get "postgres-$run" "$filter")
    echo "| $label | $(fmt "$format" "$lite") | $(fmt "$format" "$pg") | $(ratio "$pg" "$lite") |"
}

TABLE="$WORK/postgres.md"
{
    echo "| Figure | SQLite | PostgreSQL | PostgreSQL / SQLite |"
    echo "|---|---|---|---|"
    row "Relays per server CPU-second (hub + PostgreSQL's processes), closed loop, $RELAY_VISITORS visitors × $RELAY_WINDOW in flight" %.0f relay .relayed_per_server_cpu_sec
    row "… acked (= committed) messages per server CPU-second" %.0f relay .acked_per_server_cpu_sec
    row "… acked messages per second (wall clock)" %.0f relay .acked_per_sec
    row "… server CPU over the window (cores, hub + PostgreSQL)" %.2f relay .server_cpu_share
    echo "| … PostgreSQL's share of that CPU | — | $(pg_share postgres-relay) | |"
    row "… ack latency p50 (ms)" %.1f relay .ack_latency.p50_ms
    row "… ack latency p99 (ms)" %.1f relay .ack_latency.p99_ms
    echo "| … mean group commit (writes per transaction) | ${BATCH[sqlite]:-n/a} | ${BATCH[postgres]:-n/a} | $(ratio "${BATCH[postgres]:-}" "${BATCH[sqlite]:-}") |"
    for p in p50 p99 p999 max; do
        row "Visitor → agent latency $p (ms) at $LATENCY_RATE msg/s, $LATENCY_VISITORS visitors + $LATENCY_IDLE idle" %.2f latency ".latency.${p}_ms"
    done
    row "… server CPU at $LATENCY_RATE msg/s (cores, hub + PostgreSQL)" %.2f latency .server_cpu_share
    echo "| … PostgreSQL's share of that CPU | — | $(pg_share postgres-latency) | |"
    row "… messages per server CPU-second at $LATENCY_RATE msg/s" %.0f latency .acked_per_server_cpu_sec
} >"$TABLE"

NOTES="$WORK/notes.md"
{
    for run in sqlite-relay postgres-relay sqlite-latency postgres-latency; do
        [[ -s "$WORK/$run.json" ]] || continue
        jq -r --arg run "$run" '[
            (if .failed then "run failed: \(.failed)" else empty end),
            (if ((.errors // 0) + (.connect_errors // 0)) > 0 then "\((.errors // 0) + (.connect_errors // 0)) errors (\(.first_error // .first_connect_error))" else empty end),
            (if (.undelivered_in_window // 0) > 0 then "\(.undelivered_in_window) messages never reached an agent" else empty end),
            (if .mode == "open" and .acked_per_sec and (.acked_per_sec < 0.95 * .rate) then "achieved only \(.acked_per_sec | floor) of \(.rate) msg/s" else empty end),
            (if (.loadgen_cpu_share // 0) > 0.9 then "load generator at \(.loadgen_cpu_share * 100 | floor) % of its core" else empty end)
          ] | .[] | "- `\($run)`: \(.)"' "$WORK/$run.json" 2>/dev/null || true
    done
} >"$NOTES"

machine() {
    printf '%s CPUs, %s, kernel %s, %s, PostgreSQL %s' "$(nproc)" \
        "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" "$(uname -r)" \
        "$(rustc --version | awk '{print $1, $2}')" \
        "$(psql -qAt "$POSTGRES_URL" -c 'SHOW server_version' 2>/dev/null | awk '{print $1}' || echo n/a)"
}
MODE=""
[[ "$QUICK" == 1 ]] && MODE="BENCH_QUICK=1 "
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`${MODE}bash scripts/bench-postgres.sh\` on $(machine); hub on core $SERVER_CPU, load generator on core $LOADGEN_CPU, PostgreSQL unpinned; ${SECONDS_MEASURED} s windows after ${WARMUP} s of warm-up."
    echo
    cat "$TABLE"
    if [[ -s "$NOTES" ]]; then
        echo
        cat "$NOTES"
    fi
} >"$WORK/block.md"
echo
cat "$WORK/block.md"

DOC="$ROOT/docs/benchmarks.md"
begin="<!-- bench:postgres:begin -->" end="<!-- bench:postgres:end -->"
if [[ "$UPDATE_DOCS" == 1 ]]; then
    if grep -qF "$begin" "$DOC" && grep -qF "$end" "$DOC"; then
        awk -v begin="$begin" -v end="$end" -v block="$WORK/block.md" '
            $0 == begin { print; while ((getline line < block) > 0) print line; skip = 1; next }
            $0 == end { skip = 0 }
            !skip { print }' "$DOC" >"$WORK/doc.md" && cp "$WORK/doc.md" "$DOC"
        log "docs/benchmarks.md updated"
    else
        log "docs/benchmarks.md has no bench:postgres markers: table printed only"
    fi
fi
