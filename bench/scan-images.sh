#!/usr/bin/env bash
# Benchmark: scan-images' own cost per cycle (everything but Trivy's work)
# on a node with N containers running U unique images, against the seed's
# shell loop (crictl ps, then one `crictl inspect` + one `trivy image` per
# container) in the same invocation. crictl and Trivy are the stand-ins from
# tests/fixtures/scan-images/bin, which answer instantly, so only the
# orchestration is measured: process starts, JSON parsing, join, cache,
# report files, metrics.
#
#   bash bench/scan-images.sh            # N=100 U=20 ROUNDS=10
#   N=500 U=50 bash bench/scan-images.sh
#
# Prints the figures and the ratios. Needs bash 5, python3, jq and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
U=${U:-20}
ROUNDS=${ROUNDS:-10}

cargo build --release --quiet -p scan-images
BIN=$PWD/target/release/scan-images
STANDINS=$PWD/tests/fixtures/scan-images/bin
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# A node: N running containers over U images, in crictl's JSON shapes.
python3 - "$W/crictl" "$N" "$U" <<'EOF'
import json, os, sys
out, n, u = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
img = lambda i: "%064x" % (0xabc000 + i)
images = [{"id": "sha256:" + img(i),
           "repoTags": ["registry.example.com/team%d/app%d:1.%d" % (i % 7, i, i)],
           "repoDigests": ["registry.example.com/team%d/app%d@sha256:%064x" % (i % 7, i, 0xdef000 + i)],
           "size": "123456789", "username": "", "pinned": False} for i in range(u)]
containers = []
for c in range(n):
    i = c % u
    cid = "%064x" % (0x100000 + c)
    labels = {"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": "app%d-7d4b9c-%05d" % (i, c),
              "io.kubernetes.pod.namespace": "ns%d" % (i % 9), "io.kubernetes.pod.uid": "uid-%d" % c}
    containers.append({"id": cid, "podSandboxId": "%064x" % (0x200000 + c), "metadata": {"name": "app", "attempt": 0},
        "image": {"image": "sha256:" + img(i), "annotations": {}, "userSpecifiedImage": "", "runtimeHandler": ""},
        "imageRef": "sha256:" + img(i), "state": "CONTAINER_RUNNING", "createdAt": "1732406400000000000",
        "labels": labels, "annotations": {"io.kubernetes.container.restartCount": "0"}})
    # What the seed loop reads: containerd's .info.config.image.image.
    json.dump({"status": {"id": cid, "imageRef": "sha256:" + img(i)},
               "info": {"pid": 1000 + c, "config": {"image": {"image": "sha256:" + img(i)}}}},
              open(os.path.join(out, "inspect-%s.json" % cid), "w"))
json.dump({"containers": containers}, open(os.path.join(out, "ps.json"), "w"))
json.dump({"images": images}, open(os.path.join(out, "images.json"), "w"))
open(os.path.join(out, "version.txt"), "w").write(
    "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.7.22\nRuntimeApiVersion:  v1\n")
EOF

mkdir -p "$W/reports" "$W/state" "$W/cache/trivy/db"
report=../shared/fixtures/trivy/debian-buster.json
if [ -f "$report" ]; then cp "$report" "$W/reports/default.json"; else
    echo '{"SchemaVersion":2,"ArtifactType":"container_image"}' > "$W/reports/default.json"; fi
echo '{"Version":2,"NextUpdate":"2999-01-01T00:00:00Z","UpdatedAt":"2026-11-20T06:00:00Z","DownloadedAt":"2026-11-20T07:00:00Z"}' \
    > "$W/cache/trivy/db/metadata.json"
# scan-images gives Trivy an empty environment: the stand-in's settings go in a wrapper.
cat > "$W/trivy" <<EOF
#!/bin/sh
export FAKE_TRIVY_LOG=$W/trivy.log FAKE_TRIVY_REPORTS=$W/reports FAKE_TRIVY_STATE=$W/state
exec $STANDINS/trivy "\$@"
EOF
chmod +x "$W/trivy"
export FAKE_CRICTL_DIR=$W/crictl

OURS=("$BIN" --crictl "$STANDINS/crictl" --trivy "$W/trivy" --runtime-endpoint unix:///run/containerd/containerd.sock
    --host-root / --node-name bench --cache-dir "$W/cache" --output-dir "$W/out" --skip-java-db
    --metrics-file "$W/scan.prom")

# The seed: per container, inspect and a Trivy run (what the issue replaces).
cat > "$W/seed.sh" <<SEED
set -eu
crictl="$STANDINS/crictl -r unix:///run/containerd/containerd.sock"
mkdir -p "$W/seed"
for id in \$(\$crictl ps -o json 2>/dev/null | jq -r '.containers[].id'); do
    image=\$(\$crictl inspect "\$id" 2>/dev/null | jq -r '.info.config.image.image')
    TMPDIR=$W/state "$W/trivy" image --format json --output "$W/seed/\$id.json" --cache-dir "$W/cache/trivy" "\$image"
done
SEED
SEED_CMD=(bash "$W/seed.sh")

measure() { # command... ; prints "wall-ms max-rss-kib" (RSS of the largest process of the run)
    local start end
    start=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$W/rss" "$@" > "$W/stdout" 2>/dev/null
    end=$EPOCHREALTIME
    awk -v s="$start" -v e="$end" -v r="$(cat "$W/rss")" 'BEGIN { printf "%.1f %d\n", (e - s) * 1000, r }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: > "$W/trivy.log"
read -r cold_ms cold_kib < <(measure "${OURS[@]}")
cold_runs=$(grep -c '^ARGV' "$W/trivy.log" || true)
jq -e ".summary.images == $U and .summary.containers == $N and .summary.scanned == $U" "$W/stdout" >/dev/null

: > "$W/ours.txt"
: > "$W/seed.txt"
: > "$W/trivy.log"
for _ in $(seq "$ROUNDS"); do
    measure "${OURS[@]}" >> "$W/ours.txt"
    jq -e ".summary.cached == $U and .summary.trivy_runs == 0" "$W/stdout" >/dev/null
    measure "${SEED_CMD[@]}" >> "$W/seed.txt"
done
seed_runs_per_cycle=$(( $(grep -c '^ARGV' "$W/trivy.log" || true) / ROUNDS ))

ours_ms=$(cut -d' ' -f1 "$W/ours.txt" | median)
ours_kib=$(cut -d' ' -f2 "$W/ours.txt" | sort -n | tail -n1)
seed_ms=$(cut -d' ' -f1 "$W/seed.txt" | median)
seed_kib=$(cut -d' ' -f2 "$W/seed.txt" | sort -n | tail -n1)

echo "node: $N containers, $U unique images, $ROUNDS rounds ($(nproc) cores)"
echo "scan-images first cycle:   ${cold_ms} ms, max RSS ${cold_kib} KiB, Trivy runs ${cold_runs}"
echo "scan-images cached cycle:  ${ours_ms} ms (median), max RSS ${ours_kib} KiB, Trivy runs 0"
echo "seed shell loop per cycle: ${seed_ms} ms (median), max RSS ${seed_kib} KiB, Trivy runs ${seed_runs_per_cycle}"
awk -v a="$seed_ms" -v b="$ours_ms" -v c="$cold_ms" 'BEGIN {
    printf "ratio seed/scan-images: %.1fx (cached cycle), %.1fx (first cycle)\n", a / b, a / c }'
