#!/usr/bin/env bash
# CI setup for the fuzz targets (fuzz/, run by tests/fuzz.sh):
# - a C++ compiler: libfuzzer-sys builds LLVM's libFuzzer from source;
# - the fuzz crate's dependencies fetched, at the versions fuzz/Cargo.lock
#   pins (libfuzzer-sys and the workspace's own pins; not --locked, so a
#   workspace crate that gains a dependency adds it).
# The instrumented build and the growing corpus live in
# /var/cache/nodeguard-ci/fuzz (kept between CI runs on one machine).
# Idempotent.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if ! command -v c++ >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends g++ >/dev/null
fi
mkdir -p /var/cache/nodeguard-ci/fuzz
cargo fetch --manifest-path "$root/fuzz/Cargo.toml" >/dev/null
c++ --version | head -n1
