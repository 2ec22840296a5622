#!/usr/bin/env bash
# Builds the release binary and fails unless it is what people deploy (issue 18): no
# debug information, symbols stripped, under 20 MB (1 MB = 1,000,000 bytes). The
# `profiling` profile is the build that keeps them (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."

budget=20000000
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p salam-hub --bin salam
binary="$target/release/salam"

size=$(wc -c < "$binary")
sections=$(readelf -S -W "$binary")
printf 'release binary %s: %d bytes (budget %d)\n' "$binary" "$size" "$budget"
if grep -q '\.debug_' <<<"$sections"; then
    echo "check-binary-size: $binary has debug information; [profile.release] must not keep it" >&2
    exit 1
fi
if grep -q '\.symtab' <<<"$sections"; then
    echo "check-binary-size: $binary is not stripped; [profile.release] must strip it" >&2
    exit 1
fi
if ((size > budget)); then
    echo "check-binary-size: $binary is $size bytes, over the $budget-byte budget" >&2
    exit 1
fi
