#!/usr/bin/env bash
# CI setup for `cargo deny check bans licenses sources` (deny.toml at the
# workspace root): builds cargo-deny once, pinned, into
# /var/cache/nodeguard-ci/cargo-deny-<version>/bin/cargo-deny. Idempotent: a
# cached binary of the pinned version is reused (the build takes minutes).
# Advisories are not checked in CI: the RustSec database is fetched from
# GitHub, which CI cannot reach.
set -euo pipefail

version=0.20.2
root=/var/cache/nodeguard-ci/cargo-deny-$version
bin=$root/bin/cargo-deny

if ! "$bin" --version 2>/dev/null | grep -q " $version\$"; then
    mkdir -p "$root"
    CARGO_TARGET_DIR=/var/cache/nodeguard-ci/cargo-deny-build \
        nice -n 10 cargo install --locked --root "$root" "cargo-deny@$version"
    rm -rf /var/cache/nodeguard-ci/cargo-deny-build
fi
"$bin" --version
