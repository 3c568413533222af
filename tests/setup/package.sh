#!/usr/bin/env bash
# CI setup for scripts/package and tests/package.rs: dpkg-deb and rpmbuild
# (the .deb and .rpm are built with the distributions' own tools), the
# static musl targets, a C cross compiler for ring's arm64 parts, qemu to
# run the arm64 binaries, file and man to inspect them. Idempotent.
set -euo pipefail

need=()
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v file >/dev/null || need+=(file)
command -v man >/dev/null || need+=(man-db)
command -v objcopy >/dev/null || need+=(binutils)
if [ "${#need[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" ||
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; }
fi
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed)
    for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        grep -qx "$target" <<<"$installed" || rustup target add "$target"
    done
fi
