#!/usr/bin/env bash
# Benchmarks the converged re-run of install-agent (nothing to do: the
# agent is installed, configured, enabled and active) on a real systemd
# node, against the peer check today's shell bootstrappers run on every pod
# start: nsenter into PID 1 and ask `dpkg -s` + `systemctl is-active`.
#
# install-agent does more in that time: it reads the host facts, takes the
# host lock, queries the package database and the unit (enabled + active),
# digests the config files against the rendered profile and reads its
# ownership record. The peer checks only "installed" and "running".
#
# Reports, per command: median/mean wall time (hyperfine) and the peak
# maximum RSS over RSS_RUNS runs (/usr/bin/time -v), and the ratios.
# Goal (issue 3): converged re-run < 100 ms whole-process, < 20 MiB RSS.
#
# Usage: sudo bench/install-agent.sh
# Env:   RUNS (hyperfine runs, default 100), RSS_RUNS (default 30),
#        OUT_DIR (default target/bench/install-agent),
#        NODEGUARD_CACHE (where tests/setup/install-agent.sh put the rootfs).
# Needs: root, hyperfine and time (apt-get install hyperfine time), the
#        node rootfs (bash tests/setup/install-agent.sh). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-100}"
rss_runs="${RSS_RUNS:-30}"
out_dir="${OUT_DIR:-target/bench/install-agent}"
rootfs="${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}/install-agent/rootfs"

[ "$(id -u)" -eq 0 ] || { echo "bench/install-agent.sh: needs root (boots a node)" >&2; exit 2; }
for tool in hyperfine /usr/bin/time systemd-nspawn nsenter dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench/install-agent.sh: missing $tool (apt-get install hyperfine time systemd-container)" >&2
        exit 2
    }
done
[ -f "$rootfs/.nodeguard-stamp" ] || {
    echo "bench/install-agent.sh: no node rootfs at $rootfs (run tests/setup/install-agent.sh)" >&2
    exit 2
}

cargo build --release --locked -p install-agent >&2
bin="$PWD/target/release/install-agent"
mkdir -p "$out_dir"
work="$(mktemp -d /tmp/nodeguard-bench-ia.XXXXXX)"
nspawn_pid=""
cleanup() {
    if [ -n "$nspawn_pid" ]; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    umount "$work/merged" 2>/dev/null || umount -l "$work/merged" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The test agent package (same shape as the e2e tests').
pkg="$work/pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system"
printf 'Package: tinyagent\nVersion: 1.0.0\nArchitecture: all\nMaintainer: nodeguard <dev@nodeguard.invalid>\nDescription: bench agent\n' \
    >"$pkg/DEBIAN/control"
printf '#!/bin/sh\nwhile :; do sleep 1; done\n' >"$pkg/usr/bin/tinyagent"
printf '#!/bin/sh\nexit 0\n' >"$pkg/usr/bin/tinyagent-activate"
chmod 755 "$pkg/usr/bin/"*
printf '[Service]\nExecStart=/usr/bin/tinyagent\n[Install]\nWantedBy=multi-user.target\n' \
    >"$pkg/lib/systemd/system/tinyagent.service"
dpkg-deb --root-owner-group --build "$pkg" "$work/tinyagent.deb" >/dev/null
sum="$(sha256sum "$work/tinyagent.deb" | cut -d' ' -f1)"
arch=amd64
[ "$(uname -m)" = aarch64 ] && arch=arm64
sed -e "s|@ARCH@|$arch|; s|@VERSION@|1.0.0|; s|@SOURCE_DEB@|path = \"$work/tinyagent.deb\"|; s|@SHA256_DEB@|$sum|" \
    -e "s|@SOURCE_RPM@|path = \"/none.rpm\"|; s|@SHA256_RPM@|$(printf '0%.0s' $(seq 64))|" \
    -e '/^\[verify\]/,/^timeout_secs/d' \
    tests/fixtures/install-agent/tinyagent.toml.in >"$work/profile.toml"
mkdir -p "$work/creds"
echo "bench-token" >"$work/creds/token"

# A node on an overlay of the cached rootfs.
mkdir -p "$work/up" "$work/wk" "$work/merged"
mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/up,workdir=$work/wk" "$work/merged"
setsid systemd-nspawn -b -D "$work/merged" -M "ng-bench-$$" --register=no --keep-unit \
    --private-network --console=passive >"$work/nspawn.log" 2>&1 </dev/null &
nspawn_pid=$!
init=""
for _ in $(seq 300); do
    init="$(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null | awk '{print $1}')"
    [ -n "$init" ] && [ "$(cat /proc/"$init"/comm 2>/dev/null)" = systemd ] && break
    sleep 0.05
done
for _ in $(seq 300); do
    state="$(nsenter -t "$init" -m -u -i -n -p -- systemctl is-system-running --wait 2>/dev/null || true)"
    [ "$state" = running ] || [ "$state" = degraded ] && break
    sleep 0.1
done

args=(install --profile "$work/profile.toml" --credentials-dir "$work/creds" --target-pid "$init")
"$bin" "${args[@]}" >"$out_dir/first-install.json"
"$bin" "${args[@]}" >"$out_dir/converged.json"
grep -q '"status":"converged"' "$out_dir/converged.json" || {
    echo "bench/install-agent.sh: second run did not report converged" >&2
    cat "$out_dir/converged.json" >&2
    exit 1
}

ours="$bin ${args[*]}"
peer="nsenter --target $init --mount --uts --ipc --net --pid -- sh -c 'dpkg -s tinyagent >/dev/null 2>&1 && systemctl is-active --quiet tinyagent'"
nice hyperfine --warmup 5 --runs "$runs" --export-json "$out_dir/hyperfine.json" \
    -n "install-agent install (converged)" "$ours >/dev/null" \
    -n "nsenter dpkg -s + systemctl is-active (peer)" "$peer" >&2

peak_rss() {
    local max=0 rss
    for _ in $(seq "$rss_runs"); do
        rss="$(/usr/bin/time -v sh -c "$1" 2>&1 >/dev/null | awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}')"
        [ "$rss" -gt "$max" ] && max="$rss"
    done
    echo "$max"
}
ours_rss="$(peak_rss "$ours")"
peer_rss="$(peak_rss "$peer")"

python3 - "$out_dir/hyperfine.json" "$ours_rss" "$peer_rss" <<'EOF' | tee "$out_dir/summary.txt"
import json, sys
results = json.load(open(sys.argv[1]))["results"]
ours, peer = results[0], results[1]
ours_rss, peer_rss = int(sys.argv[2]), int(sys.argv[3])
ms = lambda s: s * 1000
print(f"{'command':48} {'median ms':>10} {'mean ms':>9} {'peak RSS KiB':>13}")
for r, rss in ((ours, ours_rss), (peer, peer_rss)):
    print(f"{r['command'][:48]:48} {ms(r['median']):10.1f} {ms(r['mean']):9.1f} {rss:13d}")
print(f"ratio install-agent/peer: time {ours['median'] / peer['median']:.2f}x, RSS {ours_rss / max(peer_rss, 1):.2f}x")
print(f"goal: < 100 ms -> {'met' if ms(ours['median']) < 100 else 'MISSED'}; < 20 MiB -> {'met' if ours_rss < 20 * 1024 else 'MISSED'}")
EOF
