#!/usr/bin/env bash
# Benchmark: Trivy's peak memory and scratch disk on a LARGE image, scanned
# the way the scan-images DaemonSet scans it (scan-images -> real Trivy,
# `--image-src containerd`, the fixture vulnerability DB), under a memory
# limit like the pod's. The figures set the chart's scanImages defaults
# (memory limit, /tmp sizeLimit, --max-image-size); see docs/scan-images.md.
#
#   sudo bash bench/trivy-memory.sh                 # limits: none 512M 768M 1G
#   LIMITS="none 1G" sudo bash bench/trivy-memory.sh
#
# What it does:
#  1. builds (once, cached) a Debian 12 image of ~2 GB in 9 layers with
#     ~900 OS packages plus Python, Node.js and Java artefacts, offline from
#     Debian's packages, with debootstrap and umoci;
#  2. starts a private containerd, imports it, runs one container of it
#     through the CRI (the crictl stand-in from tests/setup/scan-images.sh);
#  3. for each limit, runs scan-images in its own memory cgroup with that
#     limit (systemd-run --scope -p MemoryMax where systemd is PID 1 on
#     cgroup v2; otherwise a cgroup directory made here, v2 or v1) and records:
#     Trivy's peak RSS (GNU time around the real binary), the cgroup's peak
#     charge (anonymous memory plus page cache, which is what a container
#     limit counts), the peak size of the scan's scratch directory (TMPDIR
#     and work dir, sampled every 100 ms with du), wall time, and whether
#     the scan succeeded or the kernel OOM-killed it.
#
# Needs root and the artefacts of tests/setup/scan-images.sh (containerd,
# runc, umoci, Trivy from PyPI, the crictl stand-in, the fixture DB).
# Not run in CI (it downloads ~700 MB of packages and takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

LIMITS=${LIMITS:-"none 512M 768M 1G"}
CACHE=${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}
ART=$CACHE/scan-images
VENV=${NODEGUARD_VENV:-/opt/nodeguard-venv}
BIG=$CACHE/bench/trivy-memory
MIRROR=${NODEGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "trivy-memory: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (containerd, cgroups, debootstrap)"
for f in "$ART/bin/crictl" "$ART/trivy-db/db/trivy.db" "$ART/images/pause.tar" "$VENV/bin/trivy"; do
    [ -e "$f" ] || die "missing $f: run tests/setup/scan-images.sh first"
done
for p in containerd ctr umoci debootstrap /usr/bin/time du; do
    command -v "$p" >/dev/null || die "missing $p"
done

# ---------------------------------------------------------------- the image
# Each group becomes one layer: what a real application image accumulates.
LAYER_GROUPS=(
    "build-essential gdb git"
    "openjdk-17-jdk-headless maven"
    "golang-go"
    "clang-14 llvm-14-dev"
    "python3-full python3-numpy python3-scipy python3-pandas python3-matplotlib"
    "nodejs npm"
    "postgresql nginx redis-server"
    "texlive-latex-base imagemagick"
)
STAMP="v1 bookworm ${LAYER_GROUPS[*]}"

build_image() {
    if [ -s "$BIG/big.tar" ] && [ "$(cat "$BIG/stamp" 2>/dev/null)" = "$STAMP" ]; then
        return
    fi
    echo "building the large image (once; cached in $BIG)" >&2
    rm -rf "$BIG" && mkdir -p "$BIG"
    local layout=$BIG/layout bundle=$BIG/bundle
    umoci init --layout "$layout"
    umoci new --image "$layout:1"
    umoci unpack --image "$layout:1" "$bundle"
    debootstrap --variant=minbase bookworm "$bundle/rootfs" "$MIRROR" >"$BIG/debootstrap.log" 2>&1 \
        || { tail -n 20 "$BIG/debootstrap.log" >&2; die "debootstrap failed"; }
    cp /etc/resolv.conf "$bundle/rootfs/etc/resolv.conf"
    # No service may start inside the build chroot (postgresql, nginx, redis).
    printf '#!/bin/sh\nexit 101\n' >"$bundle/rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$bundle/rootfs/usr/sbin/policy-rc.d"
    umoci repack --refresh-bundle --image "$layout:1" "$bundle"
    local group
    for group in "${LAYER_GROUPS[@]}"; do
        echo "  layer: $group" >&2
        mount -t proc proc "$bundle/rootfs/proc"
        # shellcheck disable=SC2086 # one word per package
        chroot "$bundle/rootfs" env DEBIAN_FRONTEND=noninteractive \
            apt-get -q -o Dpkg::Use-Pty=0 install -y --no-install-recommends $group \
            >>"$BIG/apt.log" 2>&1 || { umount "$bundle/rootfs/proc"; tail -n 20 "$BIG/apt.log" >&2; die "apt-get install $group failed"; }
        chroot "$bundle/rootfs" apt-get clean
        umount "$bundle/rootfs/proc"
        umoci repack --refresh-bundle --image "$layout:1" "$bundle"
    done
    umoci config --image "$layout:1" --config.cmd /bin/sleep --config.cmd 3600
    umoci gc --layout "$layout"
    tar -C "$layout" -cf "$BIG/big.tar" .
    du -sb "$bundle/rootfs" | cut -f1 >"$BIG/rootfs-bytes"
    chroot "$bundle/rootfs" dpkg-query -f '.\n' -W | wc -l >"$BIG/packages"
    find "$layout/blobs/sha256" -type f | wc -l >"$BIG/blobs"
    rm -rf "$bundle" "$layout"
    echo "$STAMP" >"$BIG/stamp"
}

# ---------------------------------------------------------- containerd node
W=$(mktemp -d /tmp/ngtm.XXXX)
OUT=${OUT:-/tmp/nodeguard-trivy-memory}
CTD_PID=""
CG=""
cleanup() {
    [ -n "$CG" ] && rmdir "$CG" 2>/dev/null
    if [ -n "$CTD_PID" ]; then
        crictl_ stopp bench >/dev/null 2>&1 || true
        crictl_ rmp bench >/dev/null 2>&1 || true
        kill "$CTD_PID" 2>/dev/null || true
        wait "$CTD_PID" 2>/dev/null || true
    fi
    # Shims outlive containerd and keep the container's rootfs mounted: end
    # them and lift every mount under $W, or the 4.7 GB state stays behind.
    pkill -f "containerd-shim.*-address $W/c.sock" 2>/dev/null || true
    awk -v w="$W" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
crictl_() { CRICTL_STANDIN_LOG_DIR=$W/logs "$ART/bin/crictl" -r "unix://$W/c.sock" "$@"; }
ctr_() { ctr --address "$W/c.sock" -n k8s.io "$@"; }

start_node() {
    mkdir -p "$W/cni"
    cat >"$W/config.toml" <<EOF
version = 2
root = "$W/root"
state = "$W/state"
[grpc]
  address = "$W/c.sock"
[ttrpc]
  address = "$W/c.sock.ttrpc"
[debug]
  address = "$W/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni"
EOF
    containerd --config "$W/config.toml" >"$W/containerd.log" 2>&1 &
    CTD_PID=$!
    local tries=0
    until crictl_ version >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 600 ] || die "containerd did not come up: $(tail -n 5 "$W/containerd.log")"
        sleep 0.1
    done
    ctr_ images import --base-name localhost/pause "$ART/images/pause.tar" >/dev/null
    ctr_ images import --base-name localhost/big "$BIG/big.tar" >/dev/null
    local pod cid
    pod=$(crictl_ runp bench bench uid-bench)
    cid=$(crictl_ create "$pod" bench bench uid-bench app localhost/big:1 /bin/sleep 3600)
    crictl_ start "$cid" >/dev/null
}

# ------------------------------------------------------------------ cgroups
# A memory cgroup with the given limit ("none" = unlimited); prints its dir.
make_cgroup() {
    local limit=$1 bytes=max base own
    [ "$limit" = none ] || bytes=$(numfmt --from=iec "${limit%B}")
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        own=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
        base=/sys/fs/cgroup$own
        mkdir "$base/ngtm-$$-$limit"
        echo "$bytes" >"$base/ngtm-$$-$limit/memory.max"
        echo 0 >"$base/ngtm-$$-$limit/memory.swap.max" 2>/dev/null || true
        echo "$base/ngtm-$$-$limit"
    else
        own=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
        base=/sys/fs/cgroup/memory$own
        mkdir "$base/ngtm-$$-$limit"
        [ "$bytes" = max ] || echo "$bytes" >"$base/ngtm-$$-$limit/memory.limit_in_bytes"
        echo 0 >"$base/ngtm-$$-$limit/memory.swappiness" 2>/dev/null || true
        echo "$base/ngtm-$$-$limit"
    fi
}
cgroup_peak() {
    if [ -f "$1/memory.peak" ]; then cat "$1/memory.peak"
    elif [ -f "$1/memory.max_usage_in_bytes" ]; then cat "$1/memory.max_usage_in_bytes"
    else echo 0; fi
}
cgroup_ooms() {
    if [ -f "$1/memory.events" ]; then awk '$1 == "oom_kill" {print $2}' "$1/memory.events"
    else awk '$1 == "oom_kill" {print $2}' "$1/memory.oom_control" 2>/dev/null || echo 0; fi
}

# ----------------------------------------------------------------- one scan
scan_once() {
    local limit=$1 run=$W/run-$1
    mkdir -p "$run/tmp" "$run/cache/trivy/db"
    cp "$ART/trivy-db/db/trivy.db" "$ART/trivy-db/db/metadata.json" "$run/cache/trivy/db/"
    cat >"$run/trivy" <<EOF
#!/bin/sh
exec /usr/bin/time -f '%M %e' -o '$run/trivy.time' '$VENV/bin/trivy' "\$@"
EOF
    chmod 755 "$run/trivy"
    CG=$(make_cgroup "$limit")
    local start end rc=0 peak_scratch=0 size
    start=$(date +%s.%N)
    sh -c 'echo $$ >"$1/cgroup.procs" 2>/dev/null || echo $$ >"$1/tasks"; shift; exec "$@"' _ "$CG" \
        env TMPDIR="$run/tmp" "$BIN" --crictl "$ART/bin/crictl" --trivy "$run/trivy" \
        --runtime-endpoint "unix://$W/c.sock" --node-name bench --skip-java-db \
        --cache-dir "$run/cache" --output-dir "$run/reports" --timeout 30m \
        >"$run/report.json" 2>"$run/stderr" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        size=$({ du -sbx "$run/tmp" "$run/cache/work" 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
        [ "$size" -gt "$peak_scratch" ] && peak_scratch=$size
        sleep 0.1
    done
    wait "$pid" || rc=$?
    end=$(date +%s.%N)
    local status trivy_rss=0
    status=$(jq -r '.images[0].status + (if .images[0].error then ": " + .images[0].error else "" end)' \
        "$run/report.json" 2>/dev/null || echo "no report (exit $rc)")
    # GNU time's last line: "<max RSS KiB> <seconds>" (a line before it
    # says so when Trivy exited non-zero).
    [ -s "$run/trivy.time" ] && trivy_rss=$(tail -n 1 "$run/trivy.time" | awk '{print $1 * 1024}')
    printf '%-6s | %-40.40s | %9s | %9s | %9s | %6.1f s | %s\n' "$limit" "$status" \
        "$(numfmt --to=iec "$trivy_rss")" "$(numfmt --to=iec "$(cgroup_peak "$CG")")" \
        "$(numfmt --to=iec "$peak_scratch")" "$(echo "$end - $start" | bc)" "$(cgroup_ooms "$CG")"
    rmdir "$CG" 2>/dev/null || true
    CG=""
    # The report and stderr of each run stay for a look at failures.
    mkdir -p "$OUT"
    cp "$run/report.json" "$OUT/report-$limit.json" 2>/dev/null || true
    cp "$run/stderr" "$OUT/stderr-$limit.log" 2>/dev/null || true
    rm -rf "$run"
}

build_image
cargo build --release --quiet -p scan-images
BIN=$PWD/target/release/scan-images
start_node

printf 'image: %s compressed archive, %s unpacked, %s OS packages, %s blobs (layers + config + manifest)\n' \
    "$(numfmt --to=iec "$(stat -c %s "$BIG/big.tar")")" "$(numfmt --to=iec "$(cat "$BIG/rootfs-bytes")")" \
    "$(cat "$BIG/packages")" "$(cat "$BIG/blobs")"
echo "trivy: $("$VENV/bin/trivy" --version | head -n1), fixture DB, --scanners vuln, --image-src containerd"
printf '%-6s | %-40s | %9s | %9s | %9s | %8s | %s\n' limit "scan status" "trivy RSS" "cg peak" scratch wall ooms
for limit in $LIMITS; do
    scan_once "$limit"
done
