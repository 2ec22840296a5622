#!/usr/bin/env bash
# The routing control plane before and after its rework, in one run: the same storm of
# hand-offs (salam-loadgen handoff) against the hub built at BASE (default: the last
# commit before the rework) and against the current tree, in turn, on the same cores.
#
#   storm     VISITORS visitors connect and greet; then every one sends its first
#             message at once on a site with the bot off: VISITORS hand-offs, routed to
#             AGENTS agents (capacity VISITORS / AGENTS each). Meanwhile two pollers
#             call GET /api/widget/{key} and GET /api/agents back to back.
#   figures   hand-offs routed per second (first send to last assignment), send →
#             assigned latency, and the two endpoints' latency during the storm.
#
# Plus the routing actor alone (no store, no sockets): commands per second, from the
# criterion bench `cargo bench -p salam-hub --bench routing` (current tree only: the old
# actor awaited the store inside its loop, so it cannot run without one).
#
# Usage: bash scripts/bench-control-plane.sh            (about 2 minutes after the builds)
#        BENCH_BASE=<rev> BENCH_VISITORS=1000 BENCH_AGENTS=10 BENCH_REPEAT=3 ...
# With BENCH_UPDATE_DOCS=1 (the default) the table replaces the one between the
# control-plane markers in docs/benchmarks.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BASE=${BENCH_BASE:-581352b}
VISITORS=${BENCH_VISITORS:-1000}
AGENTS=${BENCH_AGENTS:-10}
REPEAT=${BENCH_REPEAT:-3}
PORT=${BENCH_HUB_PORT:-9312}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}
UPDATE_DOCS=${BENCH_UPDATE_DOCS:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf 'bench-control-plane: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
for tool in taskset jq cargo curl git; do
    command -v "$tool" >/dev/null || die "needs $tool"
done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    git -C "$ROOT" worktree remove --force "$WORK/base-tree" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "building the current tree (release)"
cargo build -q --release -p salam-hub --bin salam -p salam-loadgen --bin salam-loadgen
cp "$CARGO_TARGET_DIR/release/salam" "$WORK/salam-after"
LOADGEN="$CARGO_TARGET_DIR/release/salam-loadgen"
log "building $BASE (release) in a worktree"
git -C "$ROOT" worktree add -q --detach "$WORK/base-tree" "$BASE"
(cd "$WORK/base-tree" && CARGO_TARGET_DIR="$WORK/base-target" cargo build -q --release -p salam-hub --bin salam)
cp "$WORK/base-target/release/salam" "$WORK/salam-before"
rm -rf "$WORK/base-target"

# storm NAME BINARY: a fresh hub, its demo site's bot off, AGENTS agents, one storm.
storm() {
    local name=$1 binary=$2 data="$WORK/$1-data"
    mkdir -p "$data"
    printf '[limits]\nrate_per_sec = 100000\nburst = 100000\n' >"$data/salam.toml"
    # Hubs with shared limits per visitor and per address (issue 12) get them out of
    # the way too: every client of the storm is 127.0.0.1.
    if "$binary" defaults | grep -q '^visitor_rate_per_sec'; then
        printf 'visitor_rate_per_sec = 100000\nvisitor_burst = 100000\nip_rate_per_sec = 10000000\nip_burst = 10000000\nmax_connections_per_ip = 1000000\n' >>"$data/salam.toml"
    fi
    taskset -c "$SERVER_CPU" "$binary" --data "$data" --listen "127.0.0.1:$PORT" \
        >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do
        grep -q "is listening\|Listening\|listening on" "$WORK/$name.log" 2>/dev/null && break
        sleep 0.1
    done
    local key email password token site_id capacity
    key=$(grep -o 'pk_[A-Za-z0-9_]*' "$WORK/$name.log" | head -n 1)
    email=$(sed -n 's/^ *e-mail: *//p' "$WORK/$name.log" | head -n 1)
    password=$(sed -n 's/^ *password: *//p' "$WORK/$name.log" | head -n 1)
    [[ -n "$key" && -n "$email" && -n "$password" ]] || die "$name: no demo site key, admin e-mail or password"
    local api="http://127.0.0.1:$PORT/api"
    token=$(curl -sf -X POST "$api/login" -H 'content-type: application/json' \
        -d "$(jq -nc --arg email "$email" --arg password "$password" '{$email, $password}')" | jq -r .token)
    site_id=$("$binary" site list --data "$data" | awk -v key="$key" '$1 == key {print $2}')
    curl -sf -X PUT "$api/sites/$site_id/settings" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"bot": false}' >/dev/null
    capacity=$(( (VISITORS + AGENTS - 1) / AGENTS ))
    local tokens=()
    for index in $(seq "$AGENTS"); do
        curl -sf -X POST "$api/admin/agents" -H "authorization: Bearer $token" \
            -H 'content-type: application/json' \
            -d "{\"email\":\"agent$index@bench.test\",\"name\":\"Agent $index\",\"password\":\"bench password $index\",\"capacity\":$capacity,\"site_ids\":[\"$site_id\"]}" \
            >/dev/null || die "$name: could not add an agent"
        tokens+=("--agent-token=$(curl -sf -X POST "$api/login" -H 'content-type: application/json' \
            -d "{\"email\":\"agent$index@bench.test\",\"password\":\"bench password $index\"}" | jq -r .token)")
    done
    log "$name: $VISITORS hand-offs to $AGENTS agents"
    taskset -c "$LOADGEN_CPU" "$LOADGEN" handoff --addr "127.0.0.1:$PORT" "--site=$key" \
        "${tokens[@]}" --visitors "$VISITORS" >"$WORK/$name.json" 2>"$WORK/$name.loadgen.log" ||
        { cat "$WORK/$name.loadgen.log" >&2; die "$name: the storm failed"; }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

for round in $(seq "$REPEAT"); do
    storm "before-$round" "$WORK/salam-before"
    storm "after-$round" "$WORK/salam-after"
done

# The median run of each build by hand-offs per second.
median() {
    local side=$1
    for round in $(seq "$REPEAT"); do cat "$WORK/$side-$round.json"; echo; done |
        jq -s 'sort_by(.handoffs_per_sec) | .[(length / 2 | floor)]'
}
median before >"$WORK/before.json"
median after >"$WORK/after.json"

row() {
    local label=$1 filter=$2
    printf '| %s | %s | %s |\n' "$label" "$(jq -r "$filter" "$WORK/before.json")" "$(jq -r "$filter" "$WORK/after.json")"
}
table=$(
    echo "| figure (median of $REPEAT runs) | before ($BASE) | after |"
    echo "|---|---|---|"
    row "hand-offs routed per second ($VISITORS at once, $AGENTS agents)" '.handoffs_per_sec | floor'
    row "storm: first send → last assignment (s)" '.storm_secs * 100 | round / 100'
    row "send → assigned p50 / p99 (ms)" '"\(.assign_latency_ms.p50_ms) / \(.assign_latency_ms.p99_ms)"'
    row "\`GET /api/widget/{key}\` during the storm p50 / p99 / max (ms)" '"\(.widget_ms.p50_ms) / \(.widget_ms.p99_ms) / \(.widget_ms.max_ms)"'
    row "\`GET /api/widget/{key}\` requests answered during the storm" '.widget_requests'
    row "\`GET /api/agents\` during the storm p50 / p99 / max (ms)" '"\(.agents_ms.p50_ms) / \(.agents_ms.p99_ms) / \(.agents_ms.max_ms)"'
    row "\`GET /api/agents\` requests answered during the storm" '.agents_requests'
    row "visitors not assigned within 60 s" '.unfinished + .failed'
)
echo "$table"

if [[ "$UPDATE_DOCS" == 1 ]]; then
    doc="$ROOT/docs/benchmarks.md"
    begin='<!-- control-plane:begin -->'
    end='<!-- control-plane:end -->'
    grep -q "$begin" "$doc" || die "no $begin marker in $doc"
    stamp="Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`bash scripts/bench-control-plane.sh\`."
    awk -v begin="$begin" -v end="$end" -v table="$table" -v stamp="$stamp" '
        $0 == begin { print; print ""; print table; print ""; print stamp; print ""; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }
    ' "$doc" >"$WORK/doc" && cp "$WORK/doc" "$doc"
    log "updated $doc"
fi
