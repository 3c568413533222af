#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every check CI runs:
# per-area setup (packages, fixture artefacts), rustfmt, clippy, all tests,
# and the shell linter. Run it as root: the setup installs packages, and the
# tests that boot a node or start containerd need root (they skip otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

export NODEGUARD_CACHE="${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}"
export NODEGUARD_VENV="${NODEGUARD_VENV:-/opt/nodeguard-venv}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n=== %s (%ss)\n' "$*" "$SECONDS"; }

if [ "$(id -u)" -eq 0 ]; then
    step "base packages"
    apt_stamp="$NODEGUARD_CACHE/apt-updated"
    mkdir -p "$NODEGUARD_CACHE"
    # One index refresh per day is plenty and saves CI a minute.
    if [ -z "$(find "$apt_stamp" -mmin -1440 2>/dev/null)" ]; then
        apt-get -o DPkg::Lock::Timeout=600 update -q
        touch "$apt_stamp"
    fi
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        shellcheck jq python3-venv >/dev/null
    [ -x "$NODEGUARD_VENV/bin/pip" ] || python3 -m venv "$NODEGUARD_VENV"

    for setup in tests/setup/*.sh; do
        [ -e "$setup" ] || continue
        step "setup: $setup"
        bash "$setup"
    done
else
    echo "WARNING: not root: skipping package setup; root-only tests will skip." >&2
fi

for component in rustfmt clippy; do
    cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done

step "rustfmt"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny (licences, bans, sources)"
# Advisories are not checked here: the RustSec database lives on a host CI
# cannot reach. tests/setup/deny.sh installs the pinned cargo-deny.
deny="${NODEGUARD_CACHE}/cargo-deny-0.20.2/bin/cargo-deny"
if [ -x "$deny" ]; then
    "$deny" --locked check bans licenses sources
elif command -v cargo-deny >/dev/null 2>&1; then
    cargo deny --locked check bans licenses sources
else
    echo "SKIPPED cargo deny: not installed (tests/setup/deny.sh needs root)" >&2
fi

step "tests"
cargo test --workspace --locked

# Coverage-guided fuzzing (libFuzzer on the stable toolchain; docs/fuzzing.md):
# every parser of outside input, 10 s each, corpus kept in the cache.
step "fuzz (every target, ${NODEGUARD_FUZZ_SECONDS:-10} s each)"
cargo fmt --manifest-path fuzz/Cargo.toml --all --check
bash tests/fuzz.sh

if [ "$(id -u)" -eq 0 ] && [ -z "${NODEGUARD_SKIP_IMAGE_E2E:-}" ]; then
    # Builds the image offline (static musl binaries, busybox, the scripts)
    # and runs every entrypoint once in it under real containerd.
    step "image end-to-end"
    sh tests/image-e2e.sh
else
    echo "SKIPPED image end-to-end: needs root (or NODEGUARD_SKIP_IMAGE_E2E is set)" >&2
fi

step "shellcheck"
mapfile -t shell_files < <(git ls-files -- 'scripts/*' 'tests/*.sh' 'tests/setup/*.sh' 'bench/*.sh' 'manifests/image/*.sh' '.ci/run' \
    | while read -r f; do head -n1 "$f" | grep -qE '^#!.*(ba|da)?sh' && echo "$f"; done)
if [ "${#shell_files[@]}" -gt 0 ]; then
    shellcheck "${shell_files[@]}"
fi

step "all checks passed"
