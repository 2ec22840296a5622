#!/usr/bin/env bash
# Fails if the widget is over its size budget (issue 5, figures in docs/benchmarks.md):
#   the loader (widget/dist/widget.js)                         at most  4 KB gzip
#   loader + JS glue + WASM + the trigger module (everything a site with proactive
#   triggers downloads before a first message)                 at most 60 KB gzip
# (the CSS is inside the loader). Sizes are `gzip -9` bytes; 1 KB = 1000 bytes.
set -euo pipefail
cd "$(dirname "$0")/../widget/dist"

loader_budget=4000
total_budget=60000

gz() { gzip -9 -c "$1" | wc -c; }
raw() { wc -c < "$1"; }

shopt -s nullglob
glue=(salam_widget-*.js)
wasm=(salam_widget_bg-*.wasm)
triggers=(triggers-*.js)
if [ ! -f widget.js ] || [ ${#glue[@]} -ne 1 ] || [ ${#wasm[@]} -ne 1 ] || [ ${#triggers[@]} -ne 1 ]; then
    echo "check-widget-size: widget/dist/ must hold widget.js, one glue, one wasm and one triggers file (run scripts/build-widget.sh)" >&2
    ls -la >&2
    exit 1
fi

loader_gz=$(gz widget.js)
glue_gz=$(gz "${glue[0]}")
wasm_gz=$(gz "${wasm[0]}")
triggers_gz=$(gz "${triggers[0]}")
total_gz=$((loader_gz + glue_gz + wasm_gz + triggers_gz))
printf '%-34s %8s %8s\n' file raw gzip
printf '%-34s %8d %8d\n' widget.js "$(raw widget.js)" "$loader_gz"
printf '%-34s %8d %8d\n' "${glue[0]}" "$(raw "${glue[0]}")" "$glue_gz"
printf '%-34s %8d %8d\n' "${wasm[0]}" "$(raw "${wasm[0]}")" "$wasm_gz"
printf '%-34s %8d %8d\n' "${triggers[0]}" "$(raw "${triggers[0]}")" "$triggers_gz"
printf '%-34s %8s %8d\n' total "" "$total_gz"

status=0
if [ "$loader_gz" -gt "$loader_budget" ]; then
    echo "check-widget-size: the loader is $loader_gz bytes gzip, over the budget of $loader_budget" >&2
    status=1
fi
if [ "$total_gz" -gt "$total_budget" ]; then
    echo "check-widget-size: the widget is $total_gz bytes gzip, over the budget of $total_budget" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "check-widget-size: within budget (loader <= $loader_budget, total <= $total_budget bytes gzip)"
exit "$status"
