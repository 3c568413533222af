#!/usr/bin/env bash
# Benchmark: one full bench-node run (node + master + etcd sections) on a
# fixture kubeadm control-plane node, whole-process, against peers run in
# the same invocation.
#
# Peers (kube-bench itself cannot be installed here: no Go module proxy or
# release download is reachable offline, so it is not compared directly):
#   cat-floor    `cat` of every file the checks read plus every
#                /proc/*/cmdline: the I/O floor any tool must pay.
#   shell-audit  kube-bench's mechanics without Go: one `/bin/sh -c` per
#                check running `stat`/`cat`/`ps`-style commands (92 forks).
#   detect-host  another nodeguard tool reading the same host root, if it
#                is built and works on this branch.
#
# Output: hyperfine's table and JSON (target/bench-results/bench-node-*.json), the
# peak RSS from /usr/bin/time -v, and ratios. Not run in CI.
#
# Usage: bench/bench-node.sh [RUNS]   (nice'd; needs hyperfine, GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-50}"
out_dir="target/bench-results"
mkdir -p "$out_dir"

for tool in hyperfine /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool (apt-get install hyperfine time)" >&2
        exit 2
    }
done

echo "building release binaries..." >&2
nice cargo build --release -q -p bench-node -p detect-host 2>/dev/null ||
    nice cargo build --release -q -p bench-node
bin="target/release/bench-node"

root="$(mktemp -d /tmp/bench-node-root.XXXXXX)"
trap 'rm -rf "$root"' EXIT

put() { # put MODE PATH CONTENT
    mkdir -p "$(dirname "$root$2")"
    printf '%s\n' "$3" >"$root$2"
    chmod "$1" "$root$2"
}

# A kubeadm control-plane node with a kubelet, kube-proxy and etcd running.
put 644 /etc/hostname bench-node-fixture
put 644 /etc/os-release 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian'
put 644 /etc/passwd 'root:x:0:0:root:/root:/bin/bash
etcd:x:998:998::/var/lib/etcd:/sbin/nologin'
put 644 /etc/group 'root:x:0:
etcd:x:998:'
put 600 /usr/lib/systemd/system/kubelet.service '[Service]
ExecStart=/usr/bin/kubelet'
put 600 /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf '[Service]
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"'
put 600 /etc/kubernetes/kubelet.conf 'apiVersion: v1
kind: Config'
put 600 /var/lib/kubelet/config.yaml 'apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
readOnlyPort: 0
rotateCertificates: true
seccompDefault: true
podPidsLimit: 4096
streamingConnectionIdleTimeout: 0s
tlsCertFile: /var/lib/kubelet/pki/kubelet.crt
tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key'
for comp in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    put 600 "/etc/kubernetes/manifests/$comp.yaml" "apiVersion: v1
kind: Pod
metadata:
  name: $comp
spec:
  containers:
  - command:
    - $comp
    - --profiling=false
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    image: registry.k8s.io/$comp:v1.31.4
    name: $comp"
done
for conf in admin super-admin scheduler controller-manager; do
    put 600 "/etc/kubernetes/$conf.conf" 'apiVersion: v1'
done
for cert in ca apiserver apiserver-kubelet-client apiserver-etcd-client front-proxy-ca \
    front-proxy-client etcd/ca etcd/server etcd/peer etcd/healthcheck-client; do
    put 644 "/etc/kubernetes/pki/$cert.crt" '-----BEGIN CERTIFICATE-----'
    put 600 "/etc/kubernetes/pki/$cert.key" '-----BEGIN PRIVATE KEY-----'
done
put 600 /etc/cni/net.d/10-calico.conflist '{"name":"k8s-pod-network","plugins":[]}'
mkdir -p "$root/var/lib/etcd/member" && chmod 700 "$root/var/lib/etcd"

proc() { # proc PID ARGV...
    local pid="$1"
    shift
    mkdir -p "$root/proc/$pid"
    printf '%s\0' "$@" >"$root/proc/$pid/cmdline"
}
proc 1 /sbin/init
# Background noise: a node runs a few hundred processes.
for pid in $(seq 2 400); do proc "$pid" /usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id "c$pid"; done
proc 812 /usr/bin/kubelet --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml
printf '0::/system.slice/kubelet.service\n' >"$root/proc/812/cgroup"
proc 1490 /usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf
put 600 /proc/1490/root/var/lib/kube-proxy/config.conf 'metricsBindAddress: 127.0.0.1:10249'
proc 1100 etcd --data-dir=/var/lib/etcd --cert-file=/etc/kubernetes/pki/etcd/server.crt
proc 1200 kube-apiserver --profiling=false --authorization-mode=Node,RBAC

# The files a run reads, for the cat floor.
files_list="$root.files"
find "$root" -type f >"$files_list"
trap 'rm -rf "$root" "$files_list"' EXIT

# kube-bench's way: one shell per check (92 checks), each a small command.
shell_audit="$root.shell-audit.sh"
{
    echo '#!/bin/sh'
    echo "r=$root"
    # shellcheck disable=SC2016 # $r is expanded by the generated script
    for _ in $(seq 1 23); do
        echo '/bin/sh -c "stat -c permissions=%a $r/etc/kubernetes/kubelet.conf" >/dev/null'
        echo '/bin/sh -c "stat -c %U:%G $r/var/lib/kubelet/config.yaml" >/dev/null'
        echo '/bin/sh -c "cat $r/proc/812/cmdline" >/dev/null'
        echo '/bin/sh -c "cat $r/var/lib/kubelet/config.yaml" >/dev/null'
    done
} >"$shell_audit"
chmod +x "$shell_audit"
trap 'rm -rf "$root" "$files_list" "$shell_audit"' EXIT

# shellcheck disable=SC2054 # the comma is part of the --targets value
args=(--host-root "$root" --targets node,master,etcd --kubernetes-version 1.31)
"$bin" "${args[@]}" >/dev/null

cmds=(
    "$bin ${args[*]}"
    "xargs -a $files_list cat"
    "$shell_audit"
)
names=(bench-node cat-floor shell-audit)
if [ -x target/release/detect-host ] &&
    target/release/detect-host --host-root "$root" >/dev/null 2>&1; then
    cmds+=("target/release/detect-host --host-root $root")
    names+=(detect-host)
fi
hyper=()
for i in "${!cmds[@]}"; do hyper+=(-n "${names[$i]}" "${cmds[$i]}"); done
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
nice hyperfine -N --warmup 5 --runs "$runs" --export-json "$out_dir/bench-node-$stamp.json" "${hyper[@]}"

echo
echo "peak RSS (KiB), /usr/bin/time -v:"
for i in "${!cmds[@]}"; do
    # shellcheck disable=SC2086 # the command strings are word lists
    rss="$(/usr/bin/time -v ${cmds[$i]} 2>&1 >/dev/null | awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}')"
    printf '  %-12s %s\n' "${names[$i]}" "$rss"
done

# CPU time is robust to a loaded machine (wall time is not): perf's
# task-clock, when perf is there.
if command -v perf >/dev/null; then
    echo
    echo "CPU time (perf stat task-clock, 30 runs):"
    for i in "${!cmds[@]}"; do
        # shellcheck disable=SC2086 # the command strings are word lists
        clock="$(perf stat -r 30 -x, -e task-clock ${cmds[$i]} 2>&1 >/dev/null | awk -F, '/task-clock/ {printf "%.2f ms", $1}')"
        printf '  %-12s %s\n' "${names[$i]}" "$clock"
    done
fi

echo
python3 - "$out_dir/bench-node-$stamp.json" <<'EOF'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
base = res["bench-node"]["mean"]
print(f"bench-node mean {base*1000:.2f} ms (target < 50 ms)")
for name, r in res.items():
    if name != "bench-node":
        print(f"  {name:12s} {r['mean']*1000:8.2f} ms   bench-node / {name} = {base / r['mean']:.2f}")
EOF
