#!/usr/bin/env bash
# Benchmarks the whole detect-host process (start, read, print, exit) against
# peers that answer the same question on the same machine, in one run:
#   - cat <root>/etc/os-release           (the floor: one exec, one read)
#   - python3 platform.freedesktop_os_release()  (what Ansible-style facts
#                                           cost: an interpreter start)
#   - lsb_release -a                      (the traditional command)
# Reports, per command: median and mean wall time (hyperfine), and median and
# peak maximum-RSS over RSS_RUNS runs (/usr/bin/time -v), plus ratios against
# detect-host. Goal (issue 2): median < 5 ms, peak RSS < 5 MiB.
#
# Usage: bench/detect-host.sh [host-root]     (default /)
# Env:   RUNS (hyperfine runs, default 300), RSS_RUNS (default 50),
#        OUT_DIR (default target/bench/detect-host).
# Needs: hyperfine and time (apt-get install hyperfine time), python3,
#        lsb-release. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

host_root="${1:-/}"
runs="${RUNS:-300}"
rss_runs="${RSS_RUNS:-50}"
out_dir="${OUT_DIR:-target/bench/detect-host}"
python=/usr/bin/python3

for tool in hyperfine /usr/bin/time "$python" lsb_release; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench/detect-host.sh: missing $tool (apt-get install hyperfine time python3 lsb-release)" >&2
        exit 2
    }
done
[ -d "$host_root" ] || { echo "bench/detect-host.sh: host root $host_root is not a directory" >&2; exit 2; }

cargo build --release --locked -p detect-host >&2
bin="$PWD/target/release/detect-host"
mkdir -p "$out_dir"

names=(
    "detect-host"
    "cat os-release"
    "python3 platform"
    "lsb_release -a"
)
commands=(
    "$bin --host-root $host_root"
    "cat $host_root/etc/os-release"
    "$python -c 'import platform; platform.freedesktop_os_release()'"
    "lsb_release -a"
)

# Sanity: every command must succeed before it is timed.
for i in "${!commands[@]}"; do
    sh -c "${commands[$i]}" >/dev/null 2>&1 || {
        echo "bench/detect-host.sh: '${commands[$i]}' fails here" >&2
        exit 2
    }
done

hyperfine_args=(--shell=none --warmup 20 --runs "$runs" --export-json "$out_dir/hyperfine.json" --style basic)
for i in "${!commands[@]}"; do
    hyperfine_args+=(--command-name "${names[$i]}" "${commands[$i]}")
done
nice -n 5 hyperfine "${hyperfine_args[@]}" >&2

# Peak RSS: /usr/bin/time -v reports the child's maximum resident set size.
rss_file="$out_dir/rss.tsv"
: >"$rss_file"
for i in "${!commands[@]}"; do
    for _ in $(seq "$rss_runs"); do
        kib=$(/usr/bin/time -v sh -c "exec ${commands[$i]} >/dev/null 2>&1" 2>&1 \
            | awk -F': ' '/Maximum resident set size/ {print $2}')
        printf '%s\t%s\n' "${names[$i]}" "$kib" >>"$rss_file"
    done
done

"$python" - "$out_dir/hyperfine.json" "$rss_file" "$host_root" <<'EOF'
import json, statistics, sys

timing = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rss = {}
for line in open(sys.argv[2]):
    name, kib = line.rstrip("\n").split("\t")
    rss.setdefault(name, []).append(int(kib))

base = timing["detect-host"]
base_median = base["median"]
base_peak = max(rss["detect-host"])
print(f"host root: {sys.argv[3]}")
print(f"{'command':<18} {'median ms':>10} {'mean ms':>9} {'RSS med KiB':>12} {'RSS peak KiB':>13} {'time x':>7} {'peak RSS x':>10}")
for name, r in timing.items():
    med, mean = r["median"] * 1000, r["mean"] * 1000
    rmed, rpeak = statistics.median(rss[name]), max(rss[name])
    print(f"{name:<18} {med:>10.2f} {mean:>9.2f} {rmed:>12.0f} {rpeak:>13} "
          f"{r['median'] / base_median:>7.2f} {rpeak / base_peak:>10.2f}")
ok_time = base_median * 1000 < 5
ok_rss = base_peak < 5 * 1024
print(f"goal median < 5 ms: {'met' if ok_time else 'MISSED'} ({base_median * 1000:.2f} ms); "
      f"peak RSS < 5 MiB: {'met' if ok_rss else 'MISSED'} ({base_peak} KiB)")
EOF
