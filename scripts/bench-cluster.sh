#!/usr/bin/env bash
# One hub against three hubs of one cluster (issue 13), back to back in one run, both on
# the same PostgreSQL server and a nats-server of their own:
#
#   relay     closed loop, BENCH_RELAY_VISITORS visitors x 8 messages awaiting their
#             ack, 3 agent connections: relays per CPU-second of the WHOLE cluster
#             (every hub + PostgreSQL's processes for the database + nats-server);
#   latency   open loop at 1,000 and at 5,000 msg/s offered: visitor -> agent p50 / p99
#             and the rate actually reached;
#   failover  (three hubs) SIGKILL of the routing owner (`/healthz` `routing_owner`):
#             time until another hub reports `routing_owner: true`, and until a new
#             hand-off on a surviving hub is assigned.
#
# With three hubs, visitors round-robin over the hubs (`salam-loadgen relay --addr A
# --also-addr B --also-addr C`) and one agent connection sits on each hub; a message
# counts as relayed when an agent connection on ANOTHER hub than its visitor's gets it
# (crates/loadgen/src/spread.rs), so every figure goes through the bus. With one hub
# the same three agent connections are on it. Each setup gets a fresh database on
# BENCH_POSTGRES_URL (dropped at the end) and its own nats-server on a free port.
#
# All hubs run on core BENCH_SERVER_CPU, the load generator on BENCH_LOADGEN_CPU;
# PostgreSQL and nats-server are not pinned. CPU is `utime + stime` from /proc/PID/stat
# over the measured window (salam-loadgen `--server-pid` + `--also-cpu-of`); the script
# also splits it into hubs / PostgreSQL / NATS over each whole run.
#
# Usage: bash scripts/bench-cluster.sh          (quick: 3 s windows, ~2-3 minutes)
#        bash scripts/bench-cluster.sh --full   (10 s windows, 10,000 idle visitors)
# Prints the table; with BENCH_UPDATE_DOCS=1 (the default) rewrites it between the
# bench:cluster markers in docs/benchmarks.md. BENCH_SKIP_BUILD=1 uses the binaries in
# target/release as they are.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

FULL=0
for arg in "$@"; do
    case "$arg" in
        --full) FULL=1 ;;
        *) echo "usage: bash scripts/bench-cluster.sh [--full]" >&2; exit 2 ;;
    esac
done
if [[ "$FULL" == 1 ]]; then
    q_seconds=10 q_warmup=2 q_idle=10000
else
    q_seconds=3 q_warmup=2 q_idle=0
fi
SECONDS_MEASURED=${BENCH_SECONDS:-$q_seconds}
WARMUP=${BENCH_WARMUP:-$q_warmup}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}
RELAY_VISITORS=${BENCH_RELAY_VISITORS:-100}
RELAY_WINDOW=${BENCH_RELAY_WINDOW:-8}
AGENTS=3
RATES=${BENCH_RATES:-1000,5000}
LATENCY_VISITORS=${BENCH_LATENCY_VISITORS:-500}
LATENCY_IDLE=${BENCH_LATENCY_IDLE:-$q_idle}
POSTGRES_URL=${BENCH_POSTGRES_URL:-${SALAM_TEST_POSTGRES_URL:-postgres://salam:salam@127.0.0.1:5432/postgres}}
UPDATE_DOCS=${BENCH_UPDATE_DOCS:-1}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
OUT=${BENCH_OUT:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
unset SALAM_DATABASE_URL SALAM_BUS_URL SALAM_HUB_ID # set per hub below

log() { printf 'bench-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in taskset jq cargo curl psql python3; do
    command -v "$tool" >/dev/null || die "needs $tool"
done
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
[[ -x "$NATS" ]] || die "needs nats-server"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/salam-bench-cluster.XXXXXX")
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

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

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
        kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "process $pid exited early"; }
        sleep 0.1
    done
    cat "$file" >&2
    die "process $pid did not start within 30 s"
}

BIN="$CARGO_TARGET_DIR/release"
if [[ "$SKIP_BUILD" == 1 ]]; then
    log "using the binaries in $BIN"
else
    log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --release --quiet -p salam-hub -p salam-loadgen
fi
for binary in salam salam-loadgen; do
    [[ -x "$BIN/$binary" ]] || die "no $BIN/$binary: build it first"
done
psql -qAt "$POSTGRES_URL" -c 'SELECT 1' >/dev/null ||
    die "cannot reach PostgreSQL at BENCH_POSTGRES_URL (is the server running?)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= LATENCY_IDLE + LATENCY_VISITORS + 200)) ||
    die "ulimit -n is $(ulimit -n); the latency runs need $((LATENCY_IDLE + LATENCY_VISITORS + 200))"

# The PostgreSQL processes that work for database DB: its backends and the server's
# shared writers (comma-separated pids).
pg_pids() {
    psql -qAt "$POSTGRES_URL" -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
        WHERE (datname = '$1' AND pid <> pg_backend_pid())
           OR backend_type IN ('walwriter', 'checkpointer', 'background writer')"
}

# cpu_of PIDS: their utime + stime so far, in clock ticks (exited ones count 0).
cpu_of() {
    local total=0 pid fields
    for pid in ${1//,/ }; do
        fields=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a f <<<"$fields"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

healthz() { curl -s --max-time 1 "http://$1/healthz" 2>/dev/null || true; }

# start_cluster SETUP N: a fresh database, a nats-server and N hubs (hub1 first, which
# creates the demo site). Sets HUB_PIDS, HUB_ADDRS, NATS_PID, DB, SERVER_ARGS, TOKEN.
start_cluster() {
    local setup=$1 n=$2
    DB="salam_bench_cluster_$(date +%s)_$$_$n"
    psql -q "$POSTGRES_URL" -c "CREATE DATABASE $DB" >/dev/null
    DATABASES+=("$DB")
    local database_url="${POSTGRES_URL%/*}/$DB" nats_port
    nats_port=$(free_port)
    "$NATS" -a 127.0.0.1 -p "$nats_port" >"$WORK/$setup-nats.log" 2>&1 &
    NATS_PID=$!
    STARTED_PIDS+=("$NATS_PID")
    wait_for "Server is ready" "$WORK/$setup-nats.log" "$NATS_PID"
    HUB_PIDS=() HUB_ADDRS=()
    local i data port env
    for i in $(seq "$n"); do
        data="$WORK/$setup-hub$i"
        mkdir -p "$data"
        printf '[limits]\nrate_per_sec = 100000\nburst = 100000\nvisitor_rate_per_sec = 100000\nvisitor_burst = 100000\nip_rate_per_sec = 10000000\nip_burst = 10000000\nmax_connections_per_ip = 1000000\n[routing]\ndefault_capacity = 1000000\n[metrics]\ntoken = "salam-bench"\n' >"$data/salam.toml"
        port=$(free_port)
        env=("SALAM_DATABASE_URL=$database_url" "SALAM_BUS_URL=nats://127.0.0.1:$nats_port" "SALAM_HUB_ID=hub$i")
        env "${env[@]}" taskset -c "$SERVER_CPU" "$BIN/salam" --data "$data" \
            --listen "127.0.0.1:$port" >"$WORK/$setup-hub$i.log" 2>&1 &
        HUB_PIDS+=("$!")
        STARTED_PIDS+=("$!")
        HUB_ADDRS+=("127.0.0.1:$port")
        wait_for "is listening" "$WORK/$setup-hub$i.log" "$!"
    done
    local log="$WORK/$setup-hub1.log" site_key email password site_id
    site_key=$(grep -o 'pk_[A-Za-z0-9_]*' "$log" | head -n 1)
    email=$(sed -n 's/^ *e-mail: *//p' "$log" | head -n 1)
    password=$(sed -n 's/^ *password: *//p' "$log" | head -n 1)
    [[ -n "$site_key" && -n "$email" && -n "$password" ]] ||
        die "no demo site key, admin e-mail or password in hub1's output"
    TOKEN=$(curl -sf -X POST "http://${HUB_ADDRS[0]}/api/login" \
        -H 'content-type: application/json' \
        -d "$(jq -nc --arg email "$email" --arg password "$password" '{$email, $password}')" |
        jq -r .token)
    site_id=$(SALAM_DATABASE_URL="$database_url" "$BIN/salam" site list --data "$WORK/$setup-hub1" |
        awk -v key="$site_key" '$1 == key {print $2}')
    curl -sf -X PUT "http://${HUB_ADDRS[0]}/api/sites/$site_id/settings" \
        -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d '{"bot": false}' >/dev/null || die "could not turn the bot off"
    SITE_KEY=$site_key
    SERVER_ARGS=(--protocol salam "--site=$site_key" "--email=$email" "--password=$password")
    # Every hub serving, one of them owning routing.
    for _ in $(seq 100); do
        local owners=0 serving=0 addr body
        for addr in "${HUB_ADDRS[@]}"; do
            body=$(healthz "$addr")
            [[ $(jq -r '.status // empty' <<<"$body" 2>/dev/null) == ok ]] && serving=$((serving + 1))
            [[ $(jq -r '.routing_owner // empty' <<<"$body" 2>/dev/null) == true ]] && owners=$((owners + 1))
        done
        ((serving == n && owners == 1)) && return 0
        sleep 0.1
    done
    die "$setup: the hubs did not all serve with one routing owner within 10 s"
}

stop_cluster() {
    local pid
    for pid in "${HUB_PIDS[@]}"; do stop "$pid"; done
    stop "$NATS_PID"
}

loadgen() { taskset -c "$LOADGEN_CPU" "$BIN/salam-loadgen" "$@"; }

# measure NAME ARGS...: one relay run against the whole cluster, its JSON in
# $WORK/NAME.json and the CPU split (hubs / PostgreSQL / NATS, ticks) in $WORK/NAME.split.
measure() {
    local name=$1
    shift
    local pg hubs also addr_args=(--addr "${HUB_ADDRS[0]}") agent_args=() i
    pg=$(pg_pids "$DB")
    hubs=$(IFS=,; echo "${HUB_PIDS[*]}")
    also="$pg,$NATS_PID"
    for i in "${!HUB_PIDS[@]}"; do
        ((i == 0)) && continue
        also="$also,${HUB_PIDS[$i]}"
        addr_args+=(--also-addr "${HUB_ADDRS[$i]}")
    done
    # Three agent connections: one per hub (on the single hub, all three there).
    for i in $(seq 0 $((AGENTS - 1))); do
        agent_args+=(--agent-addr "${HUB_ADDRS[$((i % ${#HUB_ADDRS[@]}))]}")
    done
    local hub_before pg_before nats_before
    hub_before=$(cpu_of "$hubs") pg_before=$(cpu_of "$pg") nats_before=$(cpu_of "$NATS_PID")
    log "$name: salam-loadgen relay $* (hubs $hubs, PostgreSQL $pg, NATS $NATS_PID)"
    if loadgen relay "${addr_args[@]}" "${agent_args[@]}" --agents "$AGENTS" "$@" \
        "--also-cpu-of=$also" --server-pid "${HUB_PIDS[0]}" "${SERVER_ARGS[@]}" \
        >"$WORK/$name.json" 2>"$WORK/$name.loadgen.log"; then
        tail -n 2 "$WORK/$name.loadgen.log" | sed 's/^/    /' >&2
    else
        cat "$WORK/$name.loadgen.log" >&2
        jq -n --arg reason "$(tail -n 1 "$WORK/$name.loadgen.log")" '{failed: $reason}' \
            >"$WORK/$name.json"
        log "warning: $name failed"
    fi
    echo "$(($(cpu_of "$hubs") - hub_before)) $(($(cpu_of "$pg") - pg_before)) $(($(cpu_of "$NATS_PID") - nats_before))" \
        >"$WORK/$name.split"
}

# now_ms: wall clock in milliseconds.
now_ms() { date +%s%3N; }

# failover SETUP: SIGKILL the routing owner; time until another hub owns routing, and
# until a hand-off on a surviving hub is assigned (salam-loadgen handoff, one visitor,
# retried every 3 s). Writes $WORK/SETUP-failover.json.
failover() {
    local setup=$1 owner="" i body survivor="" survivors=()
    for i in "${!HUB_ADDRS[@]}"; do
        body=$(healthz "${HUB_ADDRS[$i]}")
        if [[ $(jq -r '.routing_owner // empty' <<<"$body") == true ]]; then
            owner=$i
        else
            survivors+=("$i")
        fi
    done
    [[ -n "$owner" ]] || die "$setup: no hub owns routing"
    survivor=${survivors[0]}
    local handoff=(handoff --addr "${HUB_ADDRS[$survivor]}" --site "$SITE_KEY"
        --origin "http://${HUB_ADDRS[0]}" --agent-token "$TOKEN" --visitors 1 --timeout 3)
    # A hand-off before the kill: what one costs (process start, handshakes, routing).
    # The load runs leave a backlog (hand-offs and commits queued behind them): settle
    # first, and keep the second of two runs.
    local before_start before_end
    sleep 3
    for _ in 1 2; do
        before_start=$(now_ms)
        loadgen "${handoff[@]}" >"$WORK/$setup-handoff-before.json" 2>>"$WORK/$setup-failover.log" || true
        before_end=$(now_ms)
    done
    log "failover: killing hub$((owner + 1)) (pid ${HUB_PIDS[$owner]}), the routing owner"
    local killed_at owned_at="" owned_by="" assigned_at="" attempts=0
    kill -KILL "${HUB_PIDS[$owner]}"
    killed_at=$(now_ms)
    local deadline=$((killed_at + 60000))
    while [[ -z "$owned_at" ]] && (($(now_ms) < deadline)); do
        for i in "${survivors[@]}"; do
            body=$(healthz "${HUB_ADDRS[$i]}")
            if [[ $(jq -r '.routing_owner // empty' <<<"$body" 2>/dev/null) == true ]]; then
                owned_at=$(now_ms) owned_by="hub$((i + 1))"
                break
            fi
        done
        [[ -z "$owned_at" ]] && sleep 0.02
    done
    # Hand-offs from the moment of the kill until one is assigned.
    while [[ -z "$assigned_at" ]] && (($(now_ms) < deadline)); do
        attempts=$((attempts + 1))
        if loadgen "${handoff[@]}" >"$WORK/$setup-handoff-after.json" 2>>"$WORK/$setup-failover.log" &&
            [[ $(jq -r '.assigned' "$WORK/$setup-handoff-after.json") == 1 ]]; then
            assigned_at=$(now_ms)
        fi
    done
    local owner_ms=null assigned_ms=null
    [[ -n "$owned_at" ]] && owner_ms=$((owned_at - killed_at))
    [[ -n "$assigned_at" ]] && assigned_ms=$((assigned_at - killed_at))
    jq -n --arg owner "hub$((owner + 1))" --arg owned_by "$owned_by" \
        --argjson owner_ms "$owner_ms" --argjson assigned_ms "$assigned_ms" \
        --argjson handoff_before_ms "$((before_end - before_start))" \
        --argjson attempts "$attempts" \
        --argjson after_assign "$(jq '.assign_latency_ms.max_ms // null' "$WORK/$setup-handoff-after.json" 2>/dev/null || echo null)" \
        '{killed: $owner, new_owner: $owned_by, new_owner_ms: $owner_ms,
          handoff_assigned_ms: $assigned_ms, handoff_attempts: $attempts,
          handoff_alone_ms: $handoff_before_ms, last_handoff_send_to_assigned_ms: $after_assign}' \
        >"$WORK/$setup-failover.json"
    log "failover: $(jq -c . "$WORK/$setup-failover.json")"
    # The killed hub is gone; take it out of the list stop_cluster walks.
    unset "HUB_PIDS[$owner]"
}

STARTED_AT=$(date +%s)
IFS=, read -r -a RATE_LIST <<<"$RATES"
for setup in one three; do
    n=1
    [[ "$setup" == three ]] && n=3
    log "---- $setup hub(s)"
    start_cluster "$setup" "$n"
    # A short run first, so that the hubs' database connections are open before the
    # PostgreSQL processes are listed.
    measure "$setup-prime" --visitors "$RELAY_VISITORS" --window "$RELAY_WINDOW" --rate 0 \
        --seconds 1 --warmup 0
    measure "$setup-relay" --visitors "$RELAY_VISITORS" --window "$RELAY_WINDOW" --rate 0 \
        --seconds "$SECONDS_MEASURED" --warmup "$WARMUP"
    for rate in "${RATE_LIST[@]}"; do
        measure "$setup-latency-$rate" --visitors "$LATENCY_VISITORS" --rate "$rate" \
            --idle "$LATENCY_IDLE" --seconds "$SECONDS_MEASURED" --warmup "$WARMUP"
    done
    if ((n > 1)); then
        failover "$setup"
    fi
    stop_cluster
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
# cpu_split RUN: "hubs X % / PostgreSQL Y % / NATS Z %" of the CPU over the whole run.
cpu_split() {
    [[ -s "$WORK/$1.split" ]] || { echo n/a; return 0; }
    awk '{ t = $1 + $2 + $3; if (t > 0) printf "%.0f / %.0f / %.0f", 100 * $1 / t, 100 * $2 / t, 100 * $3 / t; else print "n/a" }' "$WORK/$1.split"
}
row() {
    local label=$1 format=$2 run=$3 filter=$4 one three
    one=$(get "one-$run" "$filter")
    three=$(get "three-$run" "$filter")
    echo "| $label | $(fmt "$format" "$one") | $(fmt "$format" "$three") | $(ratio "$three" "$one") |"
}
failover_figure() { jq -r "($1) // \"n/a\"" "$WORK/three-failover.json" 2>/dev/null || echo n/a; }

TABLE="$WORK/cluster.md"
{
    echo "| Figure | One hub | Three hubs | Three / one |"
    echo "|---|---|---|---|"
    row "Relays per cluster CPU-second (hubs + PostgreSQL + NATS), closed loop, $RELAY_VISITORS visitors × $RELAY_WINDOW in flight" %.0f relay .relayed_per_server_cpu_sec
    row "… acked (= committed) messages per cluster CPU-second" %.0f relay .acked_per_server_cpu_sec
    row "… relayed messages per second (wall clock)" %.0f relay .relayed_per_sec
    row "… acked messages per second (wall clock)" %.0f relay .acked_per_sec
    row "… cluster CPU over the window (cores)" %.2f relay .server_cpu_share
    echo "| … CPU split hubs / PostgreSQL / NATS (%) | $(cpu_split one-relay) | $(cpu_split three-relay) | |"
    row "… ack latency p99 (ms)" %.1f relay .ack_latency.p99_ms
    for rate in "${RATE_LIST[@]}"; do
        row "At $rate msg/s offered ($LATENCY_VISITORS visitors + $LATENCY_IDLE idle): reached (msg/s relayed)" %.0f "latency-$rate" .relayed_per_sec
        row "… acked (committed) msg/s" %.0f "latency-$rate" .acked_per_sec
        row "… visitor → agent p50 (ms)" %.1f "latency-$rate" .latency.p50_ms
        row "… visitor → agent p99 (ms)" %.1f "latency-$rate" .latency.p99_ms
        row "… cluster CPU (cores)" %.2f "latency-$rate" .server_cpu_share
        echo "| … CPU split hubs / PostgreSQL / NATS (%) | $(cpu_split "one-latency-$rate") | $(cpu_split "three-latency-$rate") | |"
        row "… relays per cluster CPU-second" %.0f "latency-$rate" .relayed_per_server_cpu_sec
    done
    echo "| Failover: SIGKILL of the routing owner → another hub reports \`routing_owner: true\` (ms) | — | $(failover_figure .new_owner_ms) | |"
    echo "| … → a new hand-off on a surviving hub is assigned (ms; attempts of 3 s at most) | — | $(failover_figure .handoff_assigned_ms) ($(failover_figure .handoff_attempts)) | |"
    echo "| … one hand-off alone before the kill (ms, same command: process start + handshakes + routing) | — | $(failover_figure .handoff_alone_ms) | |"
} >"$TABLE"

NOTES="$WORK/notes.md"
{
    for file in "$WORK"/one-*.json "$WORK"/three-*.json; do
        run=$(basename "$file" .json)
        [[ "$run" == *prime || "$run" == *failover || "$run" == *handoff* ]] && continue
        jq -r --arg run "$run" '[
            (if .failed then "run failed: \(.failed)" else empty end),
            (if ((.errors // 0) + (.connect_errors // 0)) > 0 then "\((.errors // 0) + (.connect_errors // 0)) errors (\(.first_error // .first_connect_error))" else empty end),
            (if (.undelivered_in_window // 0) > 0 then "\(.undelivered_in_window) messages of the window had not reached an agent by the end of the drain" else empty end),
            (if .mode == "open" and .relayed_per_sec and (.relayed_per_sec < 0.95 * .rate) then "reached only \(.relayed_per_sec | floor) of \(.rate) msg/s offered (\(.sent) sent, \(.acked) acked in the window)" else empty end),
            (if (.loadgen_cpu_share // 0) > 0.9 then "load generator at \(.loadgen_cpu_share * 100 | floor) % of its core" else empty end)
          ] | .[] | "- `\($run)`: \(.)"' "$file" 2>/dev/null || true
    done
} >"$NOTES"

machine() {
    printf '%s CPUs, %s, kernel %s, PostgreSQL %s, %s' "$(nproc)" \
        "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" "$(uname -r)" \
        "$(psql -qAt "$POSTGRES_URL" -c 'SHOW server_version' 2>/dev/null | awk '{print $1}' || echo n/a)" \
        "$("$NATS" --version 2>/dev/null | head -n 1)"
}
MODE=""
[[ "$FULL" == 1 ]] && MODE=" --full"
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bash scripts/bench-cluster.sh$MODE\` on $(machine); all hubs on core $SERVER_CPU, load generator on core $LOADGEN_CPU, PostgreSQL and nats-server unpinned; ${SECONDS_MEASURED} s windows after ${WARMUP} s of warm-up."
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
begin="<!-- bench:cluster:begin -->" end="<!-- bench:cluster:end -->"
if [[ "$UPDATE_DOCS" == 1 ]]; then
    if grep -qF "$begin" "$DOC" && grep -qF "$end" "$DOC"; then
        awk -v begin="$begin" -v end="$end" -v block="$WORK/block.md" '
            $0 == begin { print; while ((getline line < block) > 0) print line; skip = 1; next }
            $0 == end { skip = 0 }
            !skip { print }' "$DOC" >"$WORK/doc.md" && cp "$WORK/doc.md" "$DOC"
        log "docs/benchmarks.md updated"
    else
        log "docs/benchmarks.md has no bench:cluster markers: table printed only"
    fi
fi
