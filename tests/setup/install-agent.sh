#!/usr/bin/env bash
# CI setup for the install-agent end-to-end tests (run as root, idempotent).
#
# Installs the host tools the tests drive (debootstrap, systemd-nspawn, rpm,
# openssl, setpriv) and builds ONE Debian node rootfs, cached under
# ${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}/install-agent/rootfs. Every e2e
# test boots its own node from a fresh overlay on top of that rootfs, so the
# ~50 s debootstrap is paid once per machine, not once per test.
#
# The rootfs carries systemd (PID 1 of the node), dbus, and also `rpm`: the
# RPM-flavoured node is the same rootfs with an os-release saying `rhel`,
# written by the test into its own overlay (no real RHEL userland exists
# offline; see docs/install-agent.md).
set -euo pipefail

cache="${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}/install-agent"
rootfs="${cache}/rootfs"
suite="bookworm"
mirror="${NODEGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Bump when the package list changes so stale caches are rebuilt.
stamp_value="v1 ${suite} systemd dbus systemd-sysv procps rpm"

if [[ "$(id -u)" != 0 ]]; then
    echo "install-agent setup: needs root (debootstrap, nspawn); skipping" >&2
    exit 0
fi

need=()
for tool in debootstrap:debootstrap systemd-nspawn:systemd-container rpmbuild:rpm \
    openssl:openssl setpriv:util-linux dpkg-deb:dpkg; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})); then
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}"
fi

if [[ -f "${rootfs}/.nodeguard-stamp" && "$(cat "${rootfs}/.nodeguard-stamp")" == "${stamp_value}" ]]; then
    echo "install-agent setup: node rootfs cached at ${rootfs}"
    exit 0
fi

mkdir -p "${cache}"
building="${cache}/rootfs.building"
start=$(date +%s)
# One retry: a mirror hiccup should not fail a whole CI run.
for attempt in 1 2; do
    rm -rf "${building}"
    if debootstrap --variant=minbase \
        --include=systemd,dbus,systemd-sysv,procps,rpm \
        "${suite}" "${building}" "${mirror}" >"${cache}/debootstrap.log" 2>&1; then
        break
    fi
    tail -n 40 "${cache}/debootstrap.log" >&2
    if [[ ${attempt} == 2 ]]; then
        echo "install-agent setup: debootstrap failed twice (log: ${cache}/debootstrap.log)" >&2
        exit 1
    fi
    echo "install-agent setup: debootstrap failed; retrying once" >&2
    sleep 5
done
# Trim what a node never needs: downloaded archives and apt lists (~90 MB).
rm -rf "${building}/var/cache/apt/archives/"*.deb "${building}/var/lib/apt/lists/"*
# A node that boots fast and quietly: no getty on a console we do not have.
ln -sf /dev/null "${building}/etc/systemd/system/console-getty.service"
ln -sf /dev/null "${building}/etc/systemd/system/getty@.service"
echo "nodeguard-node" >"${building}/etc/hostname"
echo "${stamp_value}" >"${building}/.nodeguard-stamp"
rm -rf "${rootfs}"
mv "${building}" "${rootfs}"
echo "install-agent setup: built node rootfs in $(($(date +%s) - start)) s at ${rootfs}"
