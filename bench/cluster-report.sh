#!/usr/bin/env bash
# Benchmark: cluster-report on 5,000 nodes' worth of JSON Lines.
#
# Generates (once, cached) the records 5,000 nodes' tools would print in one
# cycle, in the exact envelope and record shapes the tools write:
# detect-host (1 record), scan-images (25 images from a pool of 400, one
# host record, a summary), bench-node (25 results + summary), fim-check
# (0-4 changes + summary), install-agent (summary + 6 steps), plus the
# previous cycle of scan-images (superseded records the report must drop).
# Then times, in the same invocation:
#   - cluster-report on the directory (5,000 files) and on one stream (stdin);
#   - the peer: jq computing only the per-node vulnerability totals (one of
#     the dozen things the report computes) from the same stream.
# Goal: under 2 s and under 200 MiB peak RSS on this 2-core machine.
#
# usage: bench/cluster-report.sh [NODES]   (default 5000; NODEGUARD_BENCH_DIR
#        for the data, default /var/tmp/nodeguard-bench-cluster-report)
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=${1:-5000}
data=${NODEGUARD_BENCH_DIR:-/var/tmp/nodeguard-bench-cluster-report}/$nodes
runs=5

for tool in python3 jq awk /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

echo "building cluster-report (release)" >&2
cargo build --release --locked -p cluster-report >&2
bin=$PWD/target/release/cluster-report

if [ ! -f "$data/.complete" ]; then
    echo "generating $nodes nodes of JSON Lines in $data" >&2
    rm -rf "$data"
    mkdir -p "$data/nodes"
    python3 - "$nodes" "$data" <<'PY'
import json, random, sys
nodes, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(42)
sev = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
pool = []
for i in range(400):
    repo = f"registry.example.com/team-{i % 40}/service-{i}"
    pool.append(dict(image_id=f"sha256:{i:064x}", repo_tags=[f"{repo}:1.{i % 17}.{i % 5}"],
                     repo_digests=[f"{repo}@sha256:{(i * 7919):064x}"],
                     vulns={s: rnd.choice([0, 0, 0, 1, 2, 5, 13]) if s == "CRITICAL" else rnd.randint(0, 60) for s in sev}))
checks = [(f"4.{s}.{n}", f"Ensure that the CIS check {s}.{n} holds on the worker node configuration") for s in (1, 2, 3) for n in range(1, 10)][:25]
dumps = lambda d: json.dumps(d, separators=(",", ":"))
def env(tool, node, run, ts, record, **fields):
    d = {"schema_version": 1, "tool": tool, "version": "0.1.0", "run_id": run, "node": node, "timestamp": ts, "record": record}
    d.update(fields)
    return dumps(d)
def scan(node, run, ts, images):
    lines = []
    total = dict.fromkeys(sev, 0)
    for img in images:
        containers = [{"namespace": f"ns-{rnd.randint(0, 50)}", "pod": f"pod-{rnd.randint(0, 10**6)}", "container": "app"} for _ in range(rnd.randint(1, 3))]
        for s in sev:
            total[s] += img["vulns"][s]
        lines.append(env("scan-images", node, run, ts, "image", image_id=img["image_id"], repo_tags=img["repo_tags"],
                         repo_digests=img["repo_digests"], containers=containers, status="scanned", error=None,
                         vulnerabilities=img["vulns"], report_path=f"/var/lib/nodeguard/results/scan/{img['image_id'][7:19]}.json",
                         source="containerd", scan_target=img["repo_tags"][0], os="debian 12.5", scanned_at=ts, note=None))
    lines.append(env("scan-images", node, run, ts, "host", status="scanned", error=None, vulnerabilities={s: rnd.randint(0, 9) for s in sev},
                     report_path=None, os="debian 12.5", scanned_at=ts))
    lines.append(env("scan-images", node, run, ts, "summary", runtime={"endpoint": "unix:///run/containerd/containerd.sock", "kind": "containerd", "name": "containerd", "version": "1.7.13"},
                     db={"status": "current", "updated_at": "2026-11-23T06:00:00Z", "error": None},
                     summary={"images": len(images), "containers": 40, "scanned": len(images), "cached": 0, "failed": 0, "skipped": 0,
                              "vulnerabilities": total, "db_updated_at": "2026-11-23T06:00:00Z", "trivy_runs": len(images),
                              "severities": sev, "fail_on": None, "fail_on_triggered": False}))
    return lines
stream = open(f"{out}/all.jsonl", "w")
for n in range(nodes):
    node = f"ip-10-{n // 250}-{n % 250}-7.eu-west-1.compute.internal"
    ts, old = "2026-11-24T01:30:00.000Z", "2026-11-24T00:30:00.000Z"
    images = rnd.sample(pool, 25)
    lines = [env("detect-host", node, f"{n}-dh", ts, "report", os={"id": "debian", "pretty_name": "Debian GNU/Linux 12 (bookworm)", "family": "debian", "version_id": "12"},
                 arch={"machine": "x86_64", "platform": "amd64"}, kernel={"release": "6.1.0-18-amd64"})]
    lines += scan(node, f"{n}-scan-old", old, images[:20])
    lines += scan(node, f"{n}-scan", ts, images)
    fails = set(rnd.sample([c[0] for c in checks], rnd.randint(0, 6)))
    for cid, title in checks:
        lines.append(env("bench-node", node, f"{n}-bench", ts, "check", id=cid, title=title, section=cid[:3], status="FAIL" if cid in fails else "PASS",
                         scored=True, expected="permissions 600 or more restrictive", actual="644", source="config", remediation="chmod 600 the file on the node"))
    lines.append(env("bench-node", node, f"{n}-bench", ts, "summary", summary={"pass": 25 - len(fails), "fail": len(fails), "warn": 0, "info": 0}))
    changes = [(f"/etc/kubernetes/file-{rnd.randint(0, 99)}.conf", rnd.choice(["added", "removed", "changed"])) for _ in range(rnd.choice([0, 0, 0, 1, 4]))]
    for path, kind in changes:
        lines.append(env("fim-check", node, f"{n}-fim", ts, "change", path=path, kind=kind, type="file", attributes=[]))
    lines.append(env("fim-check", node, f"{n}-fim", ts, "summary", command="check", host_root="/host", config={"source": "built-in", "digest": "d"},
                     baseline={"path": "/var/lib/nodeguard/fim/baseline", "authenticated": True, "entries": 51234},
                     summary={"added": sum(k == "added" for _, k in changes), "removed": sum(k == "removed" for _, k in changes),
                              "changed": sum(k == "changed" for _, k in changes), "errors": 0, "scanned": 51234}, warnings=[]))
    lines.append(env("install-agent", node, f"{n}-agent", ts, "summary", command="install", agent="qualys-cloud-agent", status=rnd.choice(["converged"] * 9 + ["failed"]),
                     reason=None, changed=False, host=None, package={"name": "qualys-cloud-agent", "version": "6.1.0.28"},
                     observed={"installed_version": "6.1.0.28", "unit": {"load_state": "loaded", "unit_file_state": "enabled", "active_state": "active"}}))
    for step in ["lock", "detect", "download", "verify", "configure", "service"]:
        lines.append(env("install-agent", node, f"{n}-agent", ts, "step", name=step, status="ok", duration_ms=rnd.randint(1, 900), detail=None, error=None))
    text = "\n".join(lines) + "\n"
    stream.write(text)
    with open(f"{out}/nodes/{n:05d}.jsonl", "w") as f:
        f.write(text)
PY
    touch "$data/.complete"
fi

bytes=$(stat -c %s "$data/all.jsonl")
lines=$(wc -l <"$data/all.jsonl")
echo "input: $nodes nodes, $lines lines, $((bytes / 1048576)) MiB" >&2

# Median wall time, median CPU time (user + sys: what the work costs,
# whatever else runs on the shared machine) and max peak RSS over $runs runs.
measure() {
    local label=$1 runs=$2; shift 2
    local walls=() cpus=() rss=0 out wall user sys max
    for _ in $(seq "$runs"); do
        out=$( { /usr/bin/time -f '%e %U %S %M' "$@" >/dev/null; } 2>&1 | tail -n1)
        read -r wall user sys max <<<"$out"
        walls+=("$wall")
        cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')")
        [ "$max" -gt "$rss" ] && rss=$max
    done
    local mid=$(((runs + 1) / 2)) median cpu
    median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "${mid}p")
    cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "${mid}p")
    printf '%-42s wall %6.2f s   cpu %6.2f s   peak RSS %4d MiB\n' "$label" "$median" "$cpu" "$((rss / 1024))" >&2
    echo "$median $cpu"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
report_dir=$(measure "cluster-report DIR ($nodes files)" "$runs" "$bin" "$data/nodes" --html /dev/null)
report_stdin=$(measure "cluster-report - (one stream on stdin)" "$runs" sh -c "exec \"$bin\" - <\"$data/all.jsonl\"")
# shellcheck disable=SC2016 # $r is jq's variable, not the shell's
# jq takes ~100 s here: one run.
peer=$(measure "peer: jq per-node vulnerability totals" 1 \
    jq -c -n 'reduce (inputs | select(.tool == "scan-images" and .record == "image")) as $r ({}; .[$r.node] += ($r.vulnerabilities.CRITICAL))' \
    "$data/all.jsonl")

python3 - "$report_dir" "$report_stdin" "$peer" <<'PY'
import sys
(dw, dc), (sw, sc), (pw, pc) = (map(float, a.split()) for a in sys.argv[1:])
print(f"ratio (cpu time): jq peer / cluster-report = {pc / max(dc, 0.01):.0f}x (dir), {pc / max(sc, 0.01):.0f}x (stdin)")
print(f"ratio (wall): {pw / max(dw, 0.01):.0f}x (dir), {pw / max(sw, 0.01):.0f}x (stdin)")
print("goal <2 s wall:", "met" if max(dw, sw) < 2 else "NOT met (check the load average: the machine is shared)")
PY
