#!/usr/bin/env bash
# CI setup for the arm64 stand-in lifecycle tests (run as root, idempotent,
# optional: every failure here only makes those tests skip, loudly).
#
# Registers qemu-user-static's aarch64 interpreter with binfmt_misc (flag F:
# the interpreter is opened at registration, so it also works inside the
# node's mount namespace) and builds ONE Debian arm64 node rootfs with
# systemd, cached under
# ${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}/install-agent/rootfs-arm64.
# The node then boots under systemd-nspawn with every arm64 binary (systemd,
# dpkg, rpm, the stand-in agents) emulated by qemu-user.
#
# Cost: the emulated debootstrap took ~12 min on a loaded 2-core machine
# (once per machine; cached). Set NODEGUARD_ARM64_NODE=skip to leave it out
# (the arm64 node test then skips, saying so). A failure here never fails
# CI: it warns, and that test skips.
set -euo pipefail
trap 'echo "install-agent arm64 setup: failed (line ${LINENO}); the arm64 node test will skip" >&2; exit 0' ERR

cache="${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}/install-agent"
rootfs="${cache}/rootfs-arm64"
suite="bookworm"
mirror="${NODEGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
stamp_value="v1 arm64 ${suite} systemd dbus systemd-sysv procps rpm"

if [[ "$(id -u)" != 0 ]]; then
    echo "install-agent arm64 setup: needs root (binfmt_misc, debootstrap); skipping" >&2
    exit 0
fi
if [[ "${NODEGUARD_ARM64_NODE:-}" == skip ]]; then
    echo "install-agent arm64 setup: NODEGUARD_ARM64_NODE=skip; not building the arm64 node" >&2
    exit 0
fi
if [[ "$(uname -m)" == aarch64 ]]; then
    echo "install-agent arm64 setup: native arm64 machine; the ordinary node rootfs is arm64"
    exit 0
fi

need=()
for tool in debootstrap:debootstrap qemu-aarch64-static:qemu-user-static systemd-nspawn:systemd-container; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})); then
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" ||
        { apt-get -o DPkg::Lock::Timeout=600 update -q &&
            apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}"; }
fi

binfmt=/proc/sys/fs/binfmt_misc
if [[ ! -e "${binfmt}/register" ]]; then
    mount -t binfmt_misc binfmt_misc "${binfmt}"
fi
if [[ ! -e "${binfmt}/qemu-aarch64" ]]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    if [[ ! -f "${conf}" ]]; then
        echo "install-agent arm64 setup: ${conf} missing (qemu-user-static); the arm64 node test will skip" >&2
        exit 0
    fi
    grep -v '^#' "${conf}" >"${binfmt}/register"
fi

if [[ -f "${rootfs}/.nodeguard-stamp" && "$(cat "${rootfs}/.nodeguard-stamp")" == "${stamp_value}" ]]; then
    echo "install-agent arm64 setup: node rootfs cached at ${rootfs}"
    exit 0
fi

mkdir -p "${cache}"
building="${cache}/rootfs-arm64.building"
start=$(date +%s)
for attempt in 1 2; do
    rm -rf "${building}"
    if debootstrap --arch=arm64 --variant=minbase \
        --include=systemd,dbus,systemd-sysv,procps,rpm \
        "${suite}" "${building}" "${mirror}" >"${cache}/debootstrap-arm64.log" 2>&1; then
        break
    fi
    tail -n 40 "${cache}/debootstrap-arm64.log" >&2
    if [[ ${attempt} == 2 ]]; then
        echo "install-agent arm64 setup: debootstrap failed twice (log: ${cache}/debootstrap-arm64.log); the arm64 node test will skip" >&2
        exit 0
    fi
    sleep 5
done
rm -rf "${building}/var/cache/apt/archives/"*.deb "${building}/var/lib/apt/lists/"*
ln -sf /dev/null "${building}/etc/systemd/system/console-getty.service"
ln -sf /dev/null "${building}/etc/systemd/system/getty@.service"
echo "nodeguard-node-arm64" >"${building}/etc/hostname"
echo "${stamp_value}" >"${building}/.nodeguard-stamp"
rm -rf "${rootfs}"
mv "${building}" "${rootfs}"
echo "install-agent arm64 setup: built arm64 node rootfs in $(($(date +%s) - start)) s at ${rootfs}"
