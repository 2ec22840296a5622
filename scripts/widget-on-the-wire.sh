#!/usr/bin/env bash
# Widget on the wire (issue 14): the bytes a visitor's first load downloads (the loader
# /widget.js, the JS glue and the WASM, everything before a first message), as the hub
# sends them, for each Accept-Encoding a client may send. curl counts the body's bytes
# as received (`size_download`, not decoded), so this is what crosses the network,
# headers aside.
#
# Usage: bash scripts/widget-on-the-wire.sh                 starts target/release/salam
#                                                            (built if missing) on a
#                                                            fresh data directory
#        BENCH_HUB=/path/to/salam bash scripts/widget-on-the-wire.sh   another build
#        bash scripts/widget-on-the-wire.sh http://HOST:PORT   a hub already running
#        BENCH_PORT=18614 the port of the hub the script starts.
set -euo pipefail
cd "$(dirname "$0")/.."

url="${1:-}"
hub_pid=""
data=""
cleanup() {
    if [ -n "$hub_pid" ]; then
        kill "$hub_pid" 2>/dev/null || true
        wait "$hub_pid" 2>/dev/null || true
    fi
    if [ -n "$data" ]; then rm -rf "$data"; fi
}
trap cleanup EXIT

if [ -z "$url" ]; then
    hub="${BENCH_HUB:-target/release/salam}"
    if [ ! -x "$hub" ]; then
        cargo build --release -p salam-hub --bin salam
        hub=target/release/salam
    fi
    port="${BENCH_PORT:-18614}"
    url="http://127.0.0.1:$port"
    data=$(mktemp -d)
    "$hub" serve --listen "127.0.0.1:$port" --data "$data" >"$data/hub.log" 2>&1 &
    hub_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$url/healthz" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null "$url/healthz" || { cat "$data/hub.log" >&2; exit 1; }
fi

# The loader names the glue, the WASM and the trigger module it loads.
loader=$(curl -fsS "$url/widget.js")
glue=$(grep -o 'salam_widget-[0-9a-f]*\.js' <<<"$loader" | head -n 1)
wasm=$(grep -o 'salam_widget_bg-[0-9a-f]*\.wasm' <<<"$loader" | head -n 1)
triggers=$(grep -o 'triggers-[0-9a-f]*\.js' <<<"$loader" | head -n 1)
if [ -z "$glue" ] || [ -z "$wasm" ] || [ -z "$triggers" ]; then
    echo "widget-on-the-wire: the loader at $url/widget.js names no glue, WASM or trigger module" >&2
    exit 1
fi

# size_download and Content-Encoding of one GET with an Accept-Encoding (none if empty).
fetch() {
    local path=$1 accept=$2
    local args=(-fsS -o /dev/null -w '%{size_download} %header{content-encoding}\n')
    if [ -n "$accept" ]; then args+=(-H "Accept-Encoding: $accept"); fi
    curl "${args[@]}" "$url$path"
}

printf '%-20s %10s %10s %10s %10s %10s  %s\n' Accept-Encoding loader glue wasm triggers total content-encoding
for accept in "br, gzip" "gzip, deflate" ""; do
    total=0
    sizes=()
    encodings=()
    for path in /widget.js "/widget/$glue" "/widget/$wasm" "/widget/$triggers"; do
        read -r size encoding < <(fetch "$path" "$accept")
        sizes+=("$size")
        encodings+=("${encoding:-none}")
        total=$((total + size))
    done
    printf '%-20s %10d %10d %10d %10d %10d  %s\n' "${accept:-(none)}" \
        "${sizes[0]}" "${sizes[1]}" "${sizes[2]}" "${sizes[3]}" "$total" "${encodings[*]}"
done
