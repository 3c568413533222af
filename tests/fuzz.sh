#!/usr/bin/env bash
# Builds the coverage-guided fuzz targets (fuzz/fuzz_targets/*.rs, libFuzzer
# through libfuzzer-sys, on the stable toolchain) and runs each for a
# bounded time. Fails when any target finds a crash (panic), a hang (one
# input over NODEGUARD_FUZZ_INPUT_TIMEOUT s) or an input taking more than
# NODEGUARD_FUZZ_RSS_MB of memory; the input that did it is kept under
# the crash directory. See docs/fuzzing.md.
#
# Usage: tests/fuzz.sh [TARGET...]        (default: every target)
# Environment:
#   NODEGUARD_FUZZ_SECONDS        seconds per target (default 10)
#   NODEGUARD_FUZZ_CRASHES        where crashing inputs go
#                                 (default target/fuzz-crashes)
#   NODEGUARD_FUZZ_CACHE          build and corpus cache
#                                 (default /var/cache/nodeguard-ci/fuzz)
#   NODEGUARD_SHARED_FIXTURES     real-format fixtures (default ../shared/fixtures
#                                 or /work/shared/fixtures, when present)
#   NODEGUARD_FUZZ_INPUT_TIMEOUT  seconds one input may take (default 20)
#   NODEGUARD_FUZZ_RSS_MB         memory limit (default 1024)
# Reproduce a crash: <cache>/target/<host>/release/<target> <crash file>
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${NODEGUARD_FUZZ_SECONDS:-10}"
crashes="${NODEGUARD_FUZZ_CRASHES:-$root/target/fuzz-crashes}"
cache="${NODEGUARD_FUZZ_CACHE:-${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}/fuzz}"
input_timeout="${NODEGUARD_FUZZ_INPUT_TIMEOUT:-20}"
rss_mb="${NODEGUARD_FUZZ_RSS_MB:-1024}"
shared="${NODEGUARD_SHARED_FIXTURES:-}"
if [ -z "$shared" ]; then
    for candidate in "$root/../shared/fixtures" /work/shared/fixtures; do
        if [ -d "$candidate" ]; then
            shared="$candidate"
            break
        fi
    done
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$cache/target"
# libFuzzer's coverage instrumentation with stable rustc flags (what
# cargo-fuzz passes, less its nightly-only sanitizer flags). Built for an
# explicit --target so build scripts and proc macros stay uninstrumented.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
echo "fuzz: building targets in $CARGO_TARGET_DIR"
# Not --locked: fuzz/Cargo.lock follows the workspace crates' dependencies,
# and a crate that gains one must not break this run (new entries resolve
# next to the pinned ones; nothing pinned moves).
cargo build --release --quiet --manifest-path "$root/fuzz/Cargo.toml" \
    --target "$host" --bins
bin="$CARGO_TARGET_DIR/$host/release"

generated="$(mktemp -d)"
trap 'rm -rf "$generated"' EXIT
"$bin/seeds" "$generated" "$root" ${shared:+"$shared"}

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for file in "$root"/fuzz/fuzz_targets/*.rs; do
        name="$(basename "$file" .rs)"
        targets+=("$name")
    done
fi

mkdir -p "$crashes"
logs="$crashes/logs"
mkdir -p "$logs"
failed=()
for target in "${targets[@]}"; do
    corpus="$cache/corpus/$target"
    mkdir -p "$corpus" "$crashes/$target"
    # The cached corpus grows with every run; past 4000 inputs it is
    # minimised (libFuzzer -merge keeps one input per coverage feature).
    if [ "$(find "$corpus" -type f | wc -l)" -gt 4000 ]; then
        rm -rf "$corpus.min"
        mkdir -p "$corpus.min"
        if "$bin/$target" -merge=1 -timeout="$input_timeout" -rss_limit_mb="$rss_mb" \
            "$corpus.min" "$corpus" >/dev/null 2>&1; then
            rm -rf "$corpus"
            mv "$corpus.min" "$corpus"
        fi
    fi
    dirs=("$corpus")
    for seeds in "$root/fuzz/seeds/$target" "$generated/$target"; do
        if [ -d "$seeds" ]; then
            dirs+=("$seeds")
        fi
    done
    dict=()
    if [ -f "$root/fuzz/dict/$target.dict" ]; then
        dict=(-dict="$root/fuzz/dict/$target.dict")
    fi
    log="$logs/$target.log"
    status=0
    "$bin/$target" -max_total_time="$seconds" -timeout="$input_timeout" \
        -rss_limit_mb="$rss_mb" -max_len=65536 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$crashes/$target/" "${dirs[@]}" >"$log" 2>&1 || status=$?
    summary="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    if [ "$status" -eq 0 ]; then
        printf 'fuzz: %-20s ok   %s execs; %s\n' "$target" "${execs:-?}" "${summary:-}"
    else
        printf 'fuzz: %-20s FAIL (exit %s); log %s\n' "$target" "$status" "$log"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -n 8 | sed 's/^/    /'
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; inputs in $crashes" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, no crash"
