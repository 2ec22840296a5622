#!/usr/bin/env bash
# Benchmarks the Salam hub side by side with what people deploy otherwise, in one run:
#
#   echo      salam-echo, a bare tokio-tungstenite echo server: the ceiling;
#   salam     the hub, full path with SQLite persistence (bot off for the relay figures);
#   socketio  a Socket.IO relay (bench/peers/socketio-relay.js), the do-it-yourself choice;
#   soketi    Soketi, a Pusher-protocol server on uWebSockets.js (client events).
#
# Every server gets the same workload from salam-loadgen, in turn, on the same core:
#   relay     closed loop, visitors x messages in flight, 1 agent: relays per server
#             CPU-second (echo: round trips per CPU-second);
#   latency   open loop at each of BENCH_LATENCY_RATES msg/s with BENCH_LATENCY_IDLE idle
#             visitors connected at the same time: visitor -> agent p50 / p99 / p99.9;
#   idle      a fresh server, idle visitors in steps: RSS per connection at each step
#             and the connection set-up rate (per second and per server CPU-second);
#   bot       Salam only, bot on: visitor question -> bot answer latency.
#
# The server runs on one core and the load generator on another (taskset); figures
# are per server CPU-second (utime + stime of the server process, every thread,
# from /proc/PID/stat) because the machine is shared and wall-clock rates are noisy.
# Prints the tables and, with BENCH_UPDATE_DOCS=1 (the default), rewrites them between
# the bench markers in docs/benchmarks.md. The npm packages of the peers are installed
# into bench/peers/node_modules when missing, with `npm ci --ignore-scripts`: exactly the
# versions of bench/peers/package-lock.json, which it leaves as it is.
#
# The binaries are built with the release profile (stripped, as deployed);
# BENCH_PROFILE=profiling builds them with line tables and symbols instead, for perf
# or valgrind on the running hub (target/profiling/).
#
# Usage: bash scripts/bench.sh              (about 4.5 minutes of runs after the build)
#        BENCH_QUICK=1 bash scripts/bench.sh (short runs and small steps, ~1.5 minutes)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PEERS="$ROOT/bench/peers"

# Knobs (environment variables). BENCH_QUICK=1 changes the defaults, not explicit values.
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    q_seconds=3 q_warmup=1 q_latency_idle=1000 q_idle_steps=500,1000 q_settle=1
else
    q_seconds=10 q_warmup=2 q_latency_idle=10000 q_idle_steps=1000,5000,10000,19000 q_settle=2
fi
SERVERS=${BENCH_SERVERS:-echo,salam,socketio,soketi} # which servers to run, in this order
SECONDS_MEASURED=${BENCH_SECONDS:-$q_seconds}        # measured window of each run
WARMUP=${BENCH_WARMUP:-$q_warmup}                    # load before each window
SERVER_CPU=${BENCH_SERVER_CPU:-0}                    # core for the server under test
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}                  # core for the load generator
ECHO_PORT=${BENCH_ECHO_PORT:-9301}
HUB_PORT=${BENCH_HUB_PORT:-9302}
SOCKETIO_PORT=${BENCH_SOCKETIO_PORT:-9303}
SOKETI_PORT=${BENCH_SOKETI_PORT:-9304} # and the next two: Soketi's metrics and discovery
ECHO_CONNECTIONS=${BENCH_ECHO_CONNECTIONS:-100}
ECHO_WINDOW=${BENCH_ECHO_WINDOW:-8}
RELAY_VISITORS=${BENCH_RELAY_VISITORS:-100}
RELAY_WINDOW=${BENCH_RELAY_WINDOW:-8}
RELAY_AGENTS=${BENCH_RELAY_AGENTS:-1}
LATENCY_RATES=${BENCH_LATENCY_RATES:-1000,5000}
LATENCY_VISITORS=${BENCH_LATENCY_VISITORS:-500}
LATENCY_AGENTS=${BENCH_LATENCY_AGENTS:-2}
LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-$SECONDS_MEASURED}
LATENCY_IDLE=${BENCH_LATENCY_IDLE:-$q_latency_idle}
IDLE_STEPS=${BENCH_IDLE_STEPS:-$q_idle_steps}
SETTLE=${BENCH_SETTLE:-$q_settle}                    # after each idle step, before RSS
BOT_VISITORS=${BENCH_BOT_VISITORS:-100}
BOT_RATE=${BENCH_BOT_RATE:-200}
BOT_QUESTIONS=${BENCH_BOT_QUESTIONS:-$ROOT/bot-rules/eval/dev.tsv}
NODE=${BENCH_NODE:-node}
UPDATE_DOCS=${BENCH_UPDATE_DOCS:-1}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}                    # 1: use the binaries already built
PROFILE=${BENCH_PROFILE:-release}                    # cargo profile: release or profiling
OUT=${BENCH_OUT:-}                                   # keep the JSON results and logs here
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# Goals, shown beside the figures.
GOAL_ECHO_RATIO=0.7   # Salam's relays per CPU-second / echo round trips per CPU-second
GOAL_IDLE_KIB=10      # RSS per idle connection
GOAL_P99_MS=10        # p99 visitor -> agent at the highest latency rate

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in taskset jq cargo curl ps; do
    command -v "$tool" >/dev/null || die "needs $tool"
done
wants() { [[ ",$SERVERS," == *",$1,"* ]]; }

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
        mkdir -p "$OUT" && cp "$WORK"/*.json "$WORK"/*.log "$WORK"/*.md "$OUT"/ 2>/dev/null || true
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

# Waits (at most 30 s) until PATTERN appears in FILE while process PID lives.
wait_for() {
    local pattern=$1 file=$2 pid=$3
    for _ in $(seq 300); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "server exited early"; }
        sleep 0.1
    done
    cat "$file" >&2
    die "server did not start within 30 s"
}

# Fails when something (another benchmark?) already listens on PORT.
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "port $1 is in use; pick other ports with BENCH_*_PORT"
    fi
}

loadgen() { taskset -c "$LOADGEN_CPU" "$BIN/salam-loadgen" "$@"; }

# measure NAME ARGS...: one load-generator run, its JSON in $WORK/NAME.json. A run
# that fails leaves {"failed": REASON} there, so the table says so and the rest goes on.
measure() {
    local name=$1
    shift
    log "$name: salam-loadgen $1"
    if loadgen "$@" >"$WORK/$name.json" 2>"$WORK/$name.loadgen.log"; then
        sed 's/^/    /' "$WORK/$name.loadgen.log" | tail -n 4 >&2
    else
        cat "$WORK/$name.loadgen.log" >&2
        jq -n --arg reason "$(tail -n 1 "$WORK/$name.loadgen.log")" '{failed: $reason}' \
            >"$WORK/$name.json"
        log "warning: $name failed"
    fi
}

# ---- servers ---------------------------------------------------------------------------
# Each start_* sets SERVER_PID (the server process itself, which is what --server-pid
# must probe), ADDR and SERVER_ARGS (what the load generator needs to talk to it).

start_echo() {
    local name=$1
    port_free "$ECHO_PORT"
    taskset -c "$SERVER_CPU" "$BIN/salam-echo" --listen "127.0.0.1:$ECHO_PORT" \
        >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_for "is listening" "$WORK/$name.log" "$SERVER_PID"
    ADDR="127.0.0.1:$ECHO_PORT"
    SERVER_ARGS=(--protocol echo)
}

# start_hub NAME BOT: a hub on a fresh data directory, the demo site's bot off (BOT=0)
# or on (BOT=1); sets SITE_KEY, EMAIL and PASSWORD (the first admin's) too.
start_hub() {
    local name=$1 bot=$2 data="$WORK/$1-data"
    port_free "$HUB_PORT"
    mkdir -p "$data"
    # The default rate limit (10 frames/s, burst 40 per connection) protects the hub
    # from one abusive client; a closed-loop benchmark client is exactly that. An agent
    # receives the full stream of the conversations assigned to them: the capacity is
    # raised so that every visitor's conversation is assigned to the benchmark's agent.
    printf '[limits]\nrate_per_sec = 100000\nburst = 100000\nvisitor_rate_per_sec = 100000\nvisitor_burst = 100000\nip_rate_per_sec = 10000000\nip_burst = 10000000\nmax_connections_per_ip = 1000000\n[routing]\ndefault_capacity = 1000000\n' >"$data/salam.toml"
    taskset -c "$SERVER_CPU" "$BIN/salam" --data "$data" --listen "127.0.0.1:$HUB_PORT" \
        >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_for "is listening" "$WORK/$name.log" "$SERVER_PID"
    SITE_KEY=$(grep -o 'pk_[A-Za-z0-9_]*' "$WORK/$name.log" | head -n 1)
    EMAIL=$(sed -n 's/^ *e-mail: *//p' "$WORK/$name.log" | head -n 1)
    PASSWORD=$(sed -n 's/^ *password: *//p' "$WORK/$name.log" | head -n 1)
    [[ -n "$SITE_KEY" && -n "$EMAIL" && -n "$PASSWORD" ]] ||
        die "no demo site key, admin e-mail or password in the hub's output"
    # The relay figures measure the hub's own path: the bot is off for them.
    if [[ "$bot" != 1 ]]; then
        local token site_id
        token=$(curl -sf -X POST "http://127.0.0.1:$HUB_PORT/api/login" \
            -H 'content-type: application/json' \
            -d "$(jq -nc --arg email "$EMAIL" --arg password "$PASSWORD" '{$email, $password}')" |
            sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
        site_id=$("$BIN/salam" site list --data "$data" | awk -v key="$SITE_KEY" '$1 == key {print $2}')
        curl -sf -X PUT "http://127.0.0.1:$HUB_PORT/api/sites/$site_id/settings" \
            -H "authorization: Bearer $token" -H 'content-type: application/json' \
            -d '{"bot": false}' >/dev/null || die "could not turn the bot off"
    fi
    ADDR="127.0.0.1:$HUB_PORT"
    # `=`: a generated password may start with `-`.
    SERVER_ARGS=(--protocol salam "--site=$SITE_KEY" "--email=$EMAIL" "--password=$PASSWORD")
}
start_salam() { start_hub "$1" 0; }

# A node server must be probed as the node process itself (not a wrapper such as npx
# or sh), and all of its work must happen in that process: node's own threads (libuv
# pool, V8) are counted by /proc/PID/stat, child processes would not be.
check_node_process() {
    local name=$1 pid=$2 exe node_exe children threads
    exe=$(readlink "/proc/$pid/exe" || true)
    node_exe=$(readlink -f "$(command -v "$NODE")")
    [[ "$exe" == "$node_exe" ]] || die "$name: pid $pid runs '$exe', not $node_exe"
    children=$( (ps -o pid= --ppid "$pid" || true) | wc -l)
    [[ "$children" == 0 ]] || die "$name: pid $pid has $children child processes; their CPU time would be missed"
    threads=$(ls "/proc/$pid/task" | wc -l)
    log "$name: pid $pid is $NODE itself ($("$NODE" --version)), $threads threads, no child processes"
}

start_socketio() {
    local name=$1
    port_free "$SOCKETIO_PORT"
    taskset -c "$SERVER_CPU" "$NODE" "$PEERS/socketio-relay.js" --port "$SOCKETIO_PORT" \
        >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_for "is listening" "$WORK/$name.log" "$SERVER_PID"
    check_node_process "$name" "$SERVER_PID"
    ADDR="127.0.0.1:$SOCKETIO_PORT"
    SERVER_ARGS=(--protocol socketio)
}

# Soketi reads bench/peers/soketi.json (the app with client messages on, no limits,
# discovery kept on the loopback); the ports come from the environment. It is one
# process: `soketi start` does not fork (only `soketi-pm2` would).
start_soketi() {
    local name=$1
    port_free "$SOKETI_PORT"
    port_free $((SOKETI_PORT + 1))
    # In an empty directory: Soketi also loads a `.env` from its working directory.
    mkdir -p "$WORK/soketi-cwd"
    (
        cd "$WORK/soketi-cwd"
        exec env -u UWS_USE_FALLBACK SOKETI_PORT="$SOKETI_PORT" \
            SOKETI_METRICS_SERVER_PORT=$((SOKETI_PORT + 1)) \
            SOKETI_CLUSTER_PORT=$((SOKETI_PORT + 2)) \
            taskset -c "$SERVER_CPU" "$NODE" "$PEERS/node_modules/@soketi/soketi/bin/server.js" \
            start --config "$PEERS/soketi.json"
    ) >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_for "Server is up and running" "$WORK/$name.log" "$SERVER_PID"
    if grep -q "Falling back" "$WORK/$name.log"; then
        die "$name: uWebSockets.js fell back to its JavaScript implementation (see $WORK/$name.log)"
    fi
    check_node_process "$name" "$SERVER_PID"
    ADDR="127.0.0.1:$SOKETI_PORT"
    SERVER_ARGS=(--protocol pusher --app-key salam-bench-key --app-secret salam-bench-secret)
}

# ---- build and install ------------------------------------------------------------------
BIN="$CARGO_TARGET_DIR/$PROFILE"
if [[ "$SKIP_BUILD" == 1 ]]; then
    log "using the binaries in $BIN"
else
    log "building $PROFILE binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --profile "$PROFILE" --quiet -p salam-hub -p salam-loadgen
fi
for binary in salam salam-echo salam-loadgen; do
    [[ -x "$BIN/$binary" ]] || die "no $BIN/$binary: build it first"
done

if wants socketio || wants soketi; then
    command -v "$NODE" >/dev/null || die "needs node (BENCH_NODE) for the Socket.IO and Soketi runs; BENCH_SERVERS=echo,salam skips them"
    if [[ ! -d "$PEERS/node_modules/socket.io" || ! -d "$PEERS/node_modules/@soketi/soketi" ]]; then
        log "installing the peers' npm packages into bench/peers/node_modules (npm ci)"
        # `npm ci`, not `npm install`: the locked versions, and the lock file untouched.
        (cd "$PEERS" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
    fi
fi
if wants soketi; then
    # The stand-in for uWebSockets.js ships binaries for a few node ABIs only; on any
    # other node it silently falls back to a slow JavaScript server.
    abi=$("$NODE" -p 'process.platform + "_" + process.arch + "_" + process.versions.modules')
    [[ -f "$PEERS/node_modules/uWebSockets.js/binaries/uws_$abi.node" ]] ||
        die "no uWebSockets.js binary for node $("$NODE" --version) ($abi): use node 16, 18 or 20 (BENCH_NODE), or BENCH_SERVERS without soketi"
fi

# Both the load generator and the server hold every idle connection open at once.
IDLE_MAX=${IDLE_STEPS##*,}
IDLE_MAX=${IDLE_MAX//[kK]/000}
NEEDED=$((IDLE_MAX > LATENCY_IDLE + LATENCY_VISITORS ? IDLE_MAX : LATENCY_IDLE + LATENCY_VISITORS))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < NEEDED + 200)); then
    die "ulimit -n is $(ulimit -n); the idle connections need at least $((NEEDED + 200))"
fi

# ---- the runs ---------------------------------------------------------------------------
STARTED_AT=$(date +%s)
IFS=, read -r -a RATES <<<"$LATENCY_RATES"
IFS=, read -r -a STEPS <<<"$IDLE_STEPS"
MEAN_BATCH=n/a

if wants echo; then
    start_echo echo
    measure echo echo --addr "$ADDR" --server-pid "$SERVER_PID" \
        --connections "$ECHO_CONNECTIONS" --window "$ECHO_WINDOW" \
        --seconds "$SECONDS_MEASURED" --warmup "$WARMUP"
    stop "$SERVER_PID"
    start_echo echo-idle
    measure echo-idle idle --addr "$ADDR" --server-pid "$SERVER_PID" "${SERVER_ARGS[@]}" \
        --connections "$IDLE_STEPS" --hold 2 --settle "$SETTLE"
    stop "$SERVER_PID"
fi

# bench_relay_server NAME: relay, latency and idle runs against one relaying server.
bench_relay_server() {
    local name=$1
    "start_$name" "$name"
    measure "$name-relay" relay --addr "$ADDR" --server-pid "$SERVER_PID" "${SERVER_ARGS[@]}" \
        --visitors "$RELAY_VISITORS" --window "$RELAY_WINDOW" --agents "$RELAY_AGENTS" \
        --rate 0 --seconds "$SECONDS_MEASURED" --warmup "$WARMUP"
    if [[ "$name" == salam ]]; then
        # The hub's mean group-commit size over the relay run: writes per transaction.
        MEAN_BATCH=$(curl -s --max-time 5 "http://$ADDR/metrics" | awk '
            /^salam_commit_batch_size_sum/ { sum = $2 }
            /^salam_commit_batch_size_count/ { count = $2 }
            END { if (count > 0) printf "%.1f", sum / count; else print "n/a" }') || MEAN_BATCH=n/a
    fi
    for rate in "${RATES[@]}"; do
        measure "$name-latency-$rate" relay --addr "$ADDR" --server-pid "$SERVER_PID" \
            "${SERVER_ARGS[@]}" --visitors "$LATENCY_VISITORS" --agents "$LATENCY_AGENTS" \
            --rate "$rate" --idle "$LATENCY_IDLE" \
            --seconds "$LATENCY_SECONDS" --warmup "$WARMUP"
    done
    stop "$SERVER_PID"
    "start_$name" "$name-idle"
    measure "$name-idle" idle --addr "$ADDR" --server-pid "$SERVER_PID" "${SERVER_ARGS[@]}" \
        --connections "$IDLE_STEPS" --hold 2 --settle "$SETTLE"
    stop "$SERVER_PID"
}

for server in salam socketio soketi; do
    wants "$server" || continue
    log "---- $server"
    bench_relay_server "$server"
    if [[ "$server" == salam ]]; then
        start_hub salam-bot 1
        measure salam-bot bot --addr "$ADDR" --server-pid "$SERVER_PID" "--site=$SITE_KEY" \
            --questions "$BOT_QUESTIONS" --visitors "$BOT_VISITORS" --rate "$BOT_RATE" \
            --seconds "$SECONDS_MEASURED" --warmup "$WARMUP"
        stop "$SERVER_PID"
    fi
done
log "all runs done in $(($(date +%s) - STARTED_AT)) s"

# ---- the tables -------------------------------------------------------------------------
# get RUN FILTER: a figure from a run's JSON; "failed" if the run failed, "" if it did
# not run or has no such figure.
get() {
    local file="$WORK/$1.json"
    [[ -s "$file" ]] || return 0
    if jq -e '.failed' "$file" >/dev/null 2>&1; then
        echo failed
        return 0
    fi
    jq -r "($2) // empty" "$file" 2>/dev/null || true
}
is_num() { [[ "$1" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
# fmt FORMAT VALUE: "n/a" when missing, "—" when the figure does not apply.
fmt() {
    case "$2" in
        "") echo "n/a" ;;
        -) echo "—" ;;
        failed) echo "failed" ;;
        *) if is_num "$2"; then printf "$1" "$2"; else echo "$2"; fi ;;
    esac
}
calc() { awk "BEGIN { $1 }"; }

NAMES=(salam socketio soketi echo)
declare -A TITLE=([salam]=Salam [socketio]=Socket.IO [soketi]=Soketi [echo]="Echo (ceiling)")

# figure LABEL DIRECTION FORMAT GOAL SALAM SOCKETIO SOKETI ECHO: one row of the
# side-by-side table. DIRECTION is high or low (which is better); the best of Salam,
# Socket.IO and Soketi is in bold and named; the ratio column is Salam against the
# better of the two peers, > 1 when Salam is ahead.
figure() {
    local label=$1 direction=$2 format=$3 goal=$4
    declare -A value=([salam]=$5 [socketio]=$6 [soketi]=$7 [echo]=$8)
    local best="" best_value="" name
    for name in salam socketio soketi; do
        is_num "${value[$name]}" || continue
        if [[ -z "$best" ]] || calc "exit !(\"$direction\" == \"high\" ? ${value[$name]} > $best_value : ${value[$name]} < $best_value)"; then
            best=$name
            best_value=${value[$name]}
        fi
    done
    local peer="" peer_value=""
    for name in socketio soketi; do
        is_num "${value[$name]}" || continue
        if [[ -z "$peer" ]] || calc "exit !(\"$direction\" == \"high\" ? ${value[$name]} > $peer_value : ${value[$name]} < $peer_value)"; then
            peer=$name
            peer_value=${value[$name]}
        fi
    done
    local ratio="—"
    if is_num "${value[salam]}" && [[ -n "$peer" ]]; then
        if [[ "$direction" == high ]]; then
            ratio=$(calc "if ($peer_value > 0) printf \"%.2f×\", ${value[salam]} / $peer_value; else print \"—\"")
        else
            ratio=$(calc "if (${value[salam]} > 0) printf \"%.2f×\", $peer_value / ${value[salam]}; else print \"—\"")
        fi
        ratio="$ratio vs ${TITLE[$peer]}"
    fi
    local row="| $label |"
    for name in "${NAMES[@]}"; do
        local cell
        cell=$(fmt "$format" "${value[$name]}")
        [[ "$name" == "$best" ]] && cell="**$cell**"
        row+=" $cell |"
    done
    local best_title="—"
    [[ -n "$best" ]] && best_title=${TITLE[$best]}
    row+=" $best_title | $ratio | $goal |"
    echo "$row"
}

# goal_check OK TEXT: "TEXT ✓" or "TEXT ✗" by whether awk expression OK holds.
goal_check() {
    if calc "exit !($1)" 2>/dev/null; then echo "$2 ✓"; else echo "$2 ✗"; fi
}

# Figures per server.
declare -A RELAY LAT IDLE_KIB SETUP SETUP_CPU
for name in salam socketio soketi; do
    RELAY[$name]=$(get "$name-relay" .relayed_per_server_cpu_sec)
    for rate in "${RATES[@]}"; do
        for p in p50 p99 p999; do
            LAT[$name,$rate,$p]=$(get "$name-latency-$rate" ".latency.${p}_ms")
        done
    done
done
RELAY[echo]=$(get echo .round_trips_per_server_cpu_sec)
for rate in "${RATES[@]}"; do
    for p in p50 p99 p999; do LAT[echo,$rate,$p]=-; done
done
for name in "${NAMES[@]}"; do
    run=$name-idle
    SETUP[$name]=$(get "$run" .setup.connects_per_sec)
    SETUP_CPU[$name]=$(get "$run" .setup.connects_per_server_cpu_sec)
    for i in "${!STEPS[@]}"; do
        IDLE_KIB[$name,$i]=$(get "$run" ".steps[$i].bytes_per_connection / 1024")
    done
done

machine() {
    local model family cpu_model
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    cpu_model=$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    local node_version=n/a
    command -v "$NODE" >/dev/null && node_version=$("$NODE" --version)
    printf '%s CPUs (`nproc`), %s (family %s, model %s), kernel %s, node %s, %s' \
        "$(nproc)" "$model" "$family" "$cpu_model" "$(uname -r)" "$node_version" \
        "$(rustc --version | awk '{print $1, $2}')"
}

PEERS_TABLE="$WORK/peers.md"
{
    echo "| Figure | Salam | Socket.IO | Soketi | Echo (ceiling) | Best | Salam ÷ best peer (> 1: Salam ahead) | Goal (Salam) |"
    echo "|---|---|---|---|---|---|---|---|"
    ratio_goal="≥ $GOAL_ECHO_RATIO × echo"
    if is_num "${RELAY[salam]}" && is_num "${RELAY[echo]}"; then
        echo_ratio=$(calc "printf \"%.2f\", ${RELAY[salam]} / ${RELAY[echo]}")
        ratio_goal=$(goal_check "$echo_ratio >= $GOAL_ECHO_RATIO" "≥ $GOAL_ECHO_RATIO × echo: $echo_ratio")
    fi
    figure "Visitor → agent relays per server CPU-second, closed loop ($RELAY_VISITORS visitors × $RELAY_WINDOW in flight, $RELAY_AGENTS agent; echo: round trips)" \
        high %.0f "$ratio_goal" "${RELAY[salam]}" "${RELAY[socketio]}" "${RELAY[soketi]}" "${RELAY[echo]}"
    last_rate=${RATES[-1]}
    for rate in "${RATES[@]}"; do
        for p in p50 p99 p999; do
            label=${p/p999/p99.9}
            goal=""
            if [[ "$rate" == "$last_rate" && "$p" == p99 ]]; then
                goal="< $GOAL_P99_MS ms"
                is_num "${LAT[salam,$rate,$p]}" &&
                    goal=$(goal_check "${LAT[salam,$rate,$p]} < $GOAL_P99_MS" "< $GOAL_P99_MS ms")
            fi
            figure "$label visitor → agent latency (ms) at $rate msg/s, $LATENCY_VISITORS visitors + $LATENCY_IDLE idle" \
                low %.2f "$goal" "${LAT[salam,$rate,$p]}" "${LAT[socketio,$rate,$p]}" \
                "${LAT[soketi,$rate,$p]}" "${LAT[echo,$rate,$p]}"
        done
    done
    for i in "${!STEPS[@]}"; do
        goal="≤ $GOAL_IDLE_KIB KiB"
        is_num "${IDLE_KIB[salam,$i]}" &&
            goal=$(goal_check "${IDLE_KIB[salam,$i]} <= $GOAL_IDLE_KIB" "≤ $GOAL_IDLE_KIB KiB")
        figure "RSS per idle connection (KiB) at ${STEPS[$i]} connections" low %.1f "$goal" \
            "${IDLE_KIB[salam,$i]}" "${IDLE_KIB[socketio,$i]}" "${IDLE_KIB[soketi,$i]}" "${IDLE_KIB[echo,$i]}"
    done
    figure "Connection set-up: connections per second (to ${STEPS[-1]})" high %.0f "" \
        "${SETUP[salam]}" "${SETUP[socketio]}" "${SETUP[soketi]}" "${SETUP[echo]}"
    figure "Connection set-up: connections per server CPU-second" high %.0f "" \
        "${SETUP_CPU[salam]}" "${SETUP_CPU[socketio]}" "${SETUP_CPU[soketi]}" "${SETUP_CPU[echo]}"
    for p in p50 p99; do
        figure "Bot: visitor question → bot answer latency $p (ms) at $BOT_RATE questions/s" low %.2f "" \
            "$(get salam-bot ".latency.${p}_ms")" - - -
    done
} >"$PEERS_TABLE"

# Anything that makes a figure less than it seems.
NOTES="$WORK/notes.md"
{
    for name in "${NAMES[@]}"; do
        for run in "$name" "$name-relay" "$name-idle" "$name-bot" "${RATES[@]/#/$name-latency-}"; do
            file="$WORK/$run.json"
            [[ -s "$file" ]] || continue
            jq -r --arg run "$run" --arg title "${TITLE[$name]}" '
                def pct: . * 100 | floor;
                [
                  (if .failed then "run failed: \(.failed)" else empty end),
                  (if ((.errors // 0) + (.connect_errors // 0)) > 0 then "\((.errors // 0) + (.connect_errors // 0)) errors (\(.first_error // .first_connect_error))" else empty end),
                  (if (.undelivered_in_window // 0) > 0 then "\(.undelivered_in_window) messages never reached an agent" else empty end),
                  (if (.rejected // 0) > 0 then "\(.rejected) refused by the server" else empty end),
                  (if .mode == "open" and .relayed_per_sec and (.relayed_per_sec < 0.95 * .rate) then "achieved only \(.relayed_per_sec | floor) of \(.rate) msg/s" else empty end),
                  (if .idle and ((.idle.failed // 0) > 0) then "\(.idle.failed) of \(.idle.wanted) idle visitors failed to connect (\(.idle.first_error))" else empty end),
                  (if .idle and ((.idle.lost_before_window // 0) + (.idle.lost_in_window // 0)) > 0 then "\((.idle.lost_before_window // 0) + (.idle.lost_in_window // 0)) idle visitors dropped by the server" else empty end),
                  (if .test == "idle" and (.lost // 0) > 0 then "\(.lost) idle connections dropped by the server" else empty end),
                  (if .test == "idle" and ([.steps[]?.failed] | add // 0) > 0 then "\([.steps[]?.failed] | add) connections failed (\(.first_error))" else empty end),
                  (if (.unmatched // 0) + (.handoffs // 0) + (.unanswered_in_window // 0) > 0 then "bot: \(.unmatched // 0) unmatched lines, \(.handoffs // 0) handoffs, \(.unanswered_in_window // 0) unanswered" else empty end),
                  (if (.loadgen_cpu_share // 0) > 0.9 then "load generator at \(.loadgen_cpu_share * 100 | floor) % of its core: it, not the server, may be the limit" else empty end)
                ] | .[] | "- \($title), `\($run)`: \(.)"' "$file" 2>/dev/null || true
        done
    done
    # Where the servers' CPU went, for reading the per-CPU-second figures.
    shares=""
    for run in echo salam-relay socketio-relay soketi-relay; do
        share=$(get "$run" .server_cpu_share)
        is_num "$share" && shares+="${shares:+, }\`$run\` $(printf %.2f "$share")"
    done
    [[ -n "$shares" ]] && echo "- Server CPU share (cores) in the closed-loop runs: $shares."
} >"$NOTES"

# The hub-relay table of issue 2, from the same runs.
HUB_TABLE="$WORK/hub.md"
first_rate=${RATES[0]}
lat_run="salam-latency-$first_rate"
echo_rt=$(get echo .round_trips_per_server_cpu_sec)
hub_acks=$(get salam-relay .acked_per_server_cpu_sec)
hub_ratio=""
is_num "$hub_acks" && is_num "$echo_rt" && hub_ratio=$(calc "printf \"%.3f\", $hub_acks / $echo_rt")
{
    echo "| Measure | Result | Goal |"
    echo "|---|---|---|"
    echo "| (a) Echo ceiling: round trips per server CPU-second | $(fmt %.0f "$echo_rt") ($(fmt %.0f "$(get echo .round_trips_per_sec)")/s at $(fmt %.2f "$(get echo .server_cpu_share)") of a core) | |"
    echo "| (b) Hub: acked messages per server CPU-second, closed loop, ${RELAY_VISITORS} visitors × window ${RELAY_WINDOW}, ${RELAY_AGENTS} agent(s) | $(fmt %.0f "$hub_acks") ($(fmt %.0f "$(get salam-relay .acked_per_sec)")/s at $(fmt %.2f "$(get salam-relay .server_cpu_share)") of a core; ack p50 $(fmt %.1f "$(get salam-relay .ack_latency.p50_ms)") ms, p99 $(fmt %.1f "$(get salam-relay .ack_latency.p99_ms)") ms; mean group commit $MEAN_BATCH writes) | |"
    echo "| (b) Ratio hub / echo | **$(fmt %s "$hub_ratio")** | ≥ 0.7 (issue 7; 0.5 in issue 2) |"
    echo "| (c) Visitor → agent latency at ${first_rate} msg/s (${LATENCY_VISITORS} visitors, ${LATENCY_AGENTS} agents, ${LATENCY_IDLE} idle visitors, ${LATENCY_SECONDS} s): p50 / p99 / p99.9 / max | $(fmt %.2f "$(get "$lat_run" .latency.p50_ms)") / $(fmt %.2f "$(get "$lat_run" .latency.p99_ms)") / $(fmt %.2f "$(get "$lat_run" .latency.p999_ms)") / $(fmt %.2f "$(get "$lat_run" .latency.max_ms)") ms (achieved $(fmt %.0f "$(get "$lat_run" .acked_per_sec)") msg/s, $(fmt %.2f "$(get "$lat_run" .server_cpu_share)") of a core, $(fmt %s "$(get "$lat_run" .undelivered_in_window)") undelivered) | |"
    for i in "${!STEPS[@]}"; do
        echo "| (d) Hub RSS per idle visitor connection at ${STEPS[$i]} connections | **$(fmt %.1f "${IDLE_KIB[salam,$i]}") KiB** (set-up $(fmt %.0f "$(get salam-idle ".steps[$i].connects_per_sec")")/s, $(fmt %.0f "$(get salam-idle ".steps[$i].connects_per_server_cpu_sec")") per server CPU-second, $(fmt %s "$(get salam-idle ".steps[$i].failed")") failed) | ≤ 10 KiB (issue 7) |"
    done
} >"$HUB_TABLE"

WHEN=$(date -u '+%Y-%m-%d %H:%M UTC')
MODE=""
[[ "$QUICK" == 1 ]] && MODE=" (BENCH_QUICK=1: short runs, small steps)"
{
    echo "Measured $WHEN by \`bash scripts/bench.sh\`$MODE on $(machine); server on core $SERVER_CPU, load generator on core $LOADGEN_CPU."
    echo
    cat "$PEERS_TABLE"
    if [[ -s "$NOTES" ]]; then
        echo
        cat "$NOTES"
    fi
} >"$WORK/peers-block.md"
{
    echo "Measured $WHEN by \`bash scripts/bench.sh\`$MODE:"
    echo
    cat "$HUB_TABLE"
} >"$WORK/hub-block.md"

echo
cat "$WORK/peers-block.md"
echo
cat "$HUB_TABLE"

# replace_block NAME FILE: puts FILE between the bench:NAME markers of the docs.
DOC="$ROOT/docs/benchmarks.md"
replace_block() {
    local begin="<!-- bench:$1:begin -->" end="<!-- bench:$1:end -->"
    if ! grep -qF "$begin" "$DOC" || ! grep -qF "$end" "$DOC"; then
        log "docs/benchmarks.md has no bench:$1 markers: table printed only"
        return 0
    fi
    awk -v begin="$begin" -v end="$end" -v block="$2" '
        $0 == begin { print; while ((getline line < block) > 0) print line; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }
    ' "$DOC" >"$WORK/doc.md"
    cat "$WORK/doc.md" >"$DOC"
    log "updated the bench:$1 table in docs/benchmarks.md"
}
if [[ "$UPDATE_DOCS" == 1 && -f "$DOC" ]]; then
    replace_block peers "$WORK/peers-block.md"
    # The hub-relay table needs the echo and Salam runs.
    if wants echo && wants salam; then
        replace_block hub-relay "$WORK/hub-block.md"
    fi
else
    log "BENCH_UPDATE_DOCS=0: tables printed only"
fi
