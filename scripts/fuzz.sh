#!/usr/bin/env bash
# Fuzzes Salam's decoders with cargo-fuzz (libFuzzer): the wire decoder of
# salam-protocol, the rule-pack loader of salam-bot and its text normaliser.
# The targets live in fuzz/ (docs/fuzzing.md tells what each one checks).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]     # default 60
#
# CI runs a short pass without a sanitizer (more inputs per second, and no
# RUSTC_BOOTSTRAP):
#                             SALAM_FUZZ_SANITIZER=none bash scripts/fuzz.sh 45
#                             (about 4 minutes on a fresh 2-core machine: installing
#                             cargo-fuzz 0.5-1, building 1, fuzzing 2 1/4)
# A long run, before a release or after touching a decoder, the loader or the
# normaliser:                 bash scripts/fuzz.sh 3600      (an hour per target)
# One target only:            SALAM_FUZZ_TARGETS=normalise bash scripts/fuzz.sh 600
#
# It installs cargo-fuzz when missing, builds every target once, then runs each one
# for SECONDS_PER_TARGET, seeded from fuzz/corpus-seed/<target> (committed, small) and
# fuzz/corpus/<target> (cargo fuzz's working corpus, kept between runs, not committed).
# It exits 1 when a target crashes (a panic, a failed check, a sanitizer report or an
# input slower than SALAM_FUZZ_TIMEOUT seconds), after printing the crashing input's
# path under fuzz/artifacts/ and the commands that reproduce and minimise it. Every
# crash becomes a regression test in the crate's own tests (docs/fuzzing.md).
#
# Works with the stable toolchain alone. By default the targets are built with
# AddressSanitizer, whose `-Zsanitizer` flag stable rustc accepts under
# RUSTC_BOOTSTRAP=1 (set here, for the fuzz build only): slower, but it also watches the
# dependencies' unsafe code; use it for long runs. SALAM_FUZZ_SANITIZER=none builds
# without a sanitizer and needs no RUSTC_BOOTSTRAP (3 to 7 times more inputs a second;
# Salam's own crates forbid unsafe code, so a panic or failed check is what they can do).
#
# Settings (environment):
#   SALAM_FUZZ_TARGETS     targets to run (default: all three)
#   SALAM_FUZZ_SANITIZER   address (default) or none
#   SALAM_FUZZ_TIMEOUT     seconds one input may take before it counts as a crash (10)
#   SALAM_FUZZ_TARGET_DIR  build directory (default fuzz/target, apart from the main
#                          build: the fuzz build uses other compiler flags)
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Built in a temporary directory of its own, not in any CARGO_TARGET_DIR of the caller.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    env -u CARGO_TARGET_DIR cargo install --locked cargo-fuzz --version '^0.13' ||
        env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version '^0.13'
fi

read -r -a targets <<<"${SALAM_FUZZ_TARGETS:-protocol_decode rules_load normalise}"
sanitizer="${SALAM_FUZZ_SANITIZER:-address}"
timeout="${SALAM_FUZZ_TIMEOUT:-10}"
export CARGO_TARGET_DIR="${SALAM_FUZZ_TARGET_DIR:-$root/fuzz/target}"
# The flags of `cargo fuzz build`, repeated by `run` and in the reproduction commands:
# release, with debug assertions and overflow checks.
build_flags=(-O -a --sanitizer "$sanitizer")
env_prefix=""
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
    env_prefix="RUSTC_BOOTSTRAP=1 "
fi

started=$SECONDS
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer, target dir: $CARGO_TARGET_DIR)"
for target in "${targets[@]}"; do
    cargo fuzz build "${build_flags[@]}" "$target"
done
echo "fuzz: built in $((SECONDS - started)) s"

logs="$CARGO_TARGET_DIR/fuzz-logs"
mkdir -p "$logs"
passed=0
failed=0
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    marker="$logs/$target.start"
    touch "$marker"
    dict_args=()
    if [ -f "fuzz/dict/$target.dict" ]; then
        dict_args=("-dict=fuzz/dict/$target.dict")
    fi
    log="$logs/$target.log"
    echo "fuzz: $target for $seconds s (log: $log)"
    status=0
    cargo fuzz run "${build_flags[@]}" "$target" "$corpus" "fuzz/corpus-seed/$target" -- \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict_args[@]}" >"$log" 2>&1 || status=$?
    if [ "$status" -eq 0 ]; then
        passed=$((passed + 1))
        runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
        cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)"
        echo "fuzz: $target ok: ${runs:-?} inputs, ${cov:-cov: ?}, corpus $(find "$corpus" -type f | wc -l) files"
        continue
    fi
    failed=$((failed + 1))
    echo "fuzz: $target FAILED (exit $status); from its log ($log):"
    # The panic message or sanitizer report, then libFuzzer's summary of the input.
    grep -m 1 -A 12 -E 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer' "$log" \
        | grep -v -E '^ +(at |[0-9]+: )' | sed 's/^/    /' || true
    grep -E '^SUMMARY: |^Base64: ' "$log" | sed 's/^/    /' || true
    found=0
    while IFS= read -r artifact; do
        found=1
        echo "fuzz: crashing input: $artifact"
        echo "fuzz: reproduce: ${env_prefix}cargo fuzz run ${build_flags[*]} $target $artifact"
        echo "fuzz: minimise:  ${env_prefix}cargo fuzz tmin ${build_flags[*]} $target $artifact"
    done < <(find "$artifacts" -type f -newer "$marker" | sort)
    if [ "$found" -eq 0 ]; then
        echo "fuzz: no artifact was written; the full log is $log"
    fi
done

echo "fuzz: done in $((SECONDS - started)) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
