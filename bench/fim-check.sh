#!/usr/bin/env bash
# Benchmark: fim-check against AIDE (the tool it replaces) on the same tree.
#
# What it does (as root; run it niced on a shared machine):
#   1. installs aide from apt if missing, builds fim-check --release;
#   2. copies /usr to $TREE (once; reused afterwards);
#   3. times `aide --init` / `aide --check` and `fim-check init` / `check`
#      with the same attributes (perm, inode, links, uid, gid, size, mtime,
#      ctime, sha256), warm page cache (the tree is re-read before every
#      run), $RUNS runs each, under /usr/bin/time;
#   4. measures the hashing floor: file bytes / (cores x single-core
#      SHA-256 speed from `openssl speed`) + a `find -printf` metadata walk;
#   5. measures what --max-read-rate does (wall time, achieved MB/s, CPU);
#   6. prints min/median per label, the ratios and the peak RSS.
#
# Every run records the CPU pressure stall time (/proc/pressure/cpu) it
# suffered and the load average, so contended runs are visible.
#
# Usage: nice -n 10 bench/fim-check.sh            (RUNS=3 by default)
# Env:   RUNS, TREE (default /tmp/fimtree-usr), WORK (default
#        /tmp/fim-check-bench), FIM (a prebuilt fim-check binary),
#        RATE_SUBTREE (default /share, relative to the tree).
set -euo pipefail

RUNS=${RUNS:-3}
TREE=${TREE:-/tmp/fimtree-usr}
WORK=${WORK:-/tmp/fim-check-bench}
RATE_SUBTREE=${RATE_SUBTREE:-/share}
REPO=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$WORK/results.tsv
ATTRS="perm+inode+links+uid+gid+size+mtime+ctime+sha256"
AIDE_ATTRS="p+i+n+u+g+s+m+c+sha256"

say() { printf '\n== %s\n' "$*"; }

cpu_stall_us() { awk -F'total=' '/^some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo 0; }

# timed LABEL CMD... : one run; appends label, wall, user, sys, max RSS (KiB),
# CPU stall (s), load average and exit code to $RESULTS.
timed() {
    local label=$1 out=$WORK/logs/$1
    shift
    local stall0 stall1 load rc=0
    load=$(cut -d' ' -f1 /proc/loadavg)
    stall0=$(cpu_stall_us)
    /usr/bin/time -f '%e %U %S %M' -o "$out.time" "$@" >"$out.out" 2>"$out.err" || rc=$?
    stall1=$(cpu_stall_us)
    read -r wall user sys rss <"$out.time"
    printf '%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\n' "$label" "$wall" "$user" "$sys" "$rss" \
        "$(echo "($stall1 - $stall0) / 1000000" | bc -l)" "$load" "$rc" | tee -a "$RESULTS"
}

# forget LABEL-PREFIX... : drop earlier results of a step that runs again.
forget() {
    local p
    for p in "$@"; do
        awk -F'\t' -v p="^$p-" '$1 !~ p' "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
    done
}

warm() { find "$TREE" -type f -print0 | xargs -0 -P2 cat >/dev/null 2>&1 || true; }

setup() {
    mkdir -p "$WORK/logs"
    touch "$RESULTS"
    if ! command -v aide >/dev/null; then
        [ "$(id -u)" -eq 0 ] || { echo "aide is missing and we are not root" >&2; exit 2; }
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends aide >/dev/null
    fi
    command -v bc >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends bc >/dev/null
    if [ -z "${FIM:-}" ]; then
        (cd "$REPO" && nice cargo build --release -q -p fim-check)
        FIM=$REPO/target/release/fim-check
    fi
    if [ ! -d "$TREE" ]; then
        say "copying /usr to $TREE"
        cp -a /usr "$TREE"
    fi
    printf '[[rule]]\npath = "/"\nattributes = "%s"\n' "$ATTRS" >"$WORK/fim.toml"
    head -c 32 /dev/urandom | base64 >"$WORK/key"
    cat >"$WORK/aide.conf" <<EOF
database_in=file:$WORK/aide.db
database_out=file:$WORK/aide.db.new
gzip_dbout=no
log_level=warning
report_url=stdout
BENCH = $AIDE_ATTRS
$TREE BENCH
EOF
    say "tree and machine"
    echo "aide: $(aide --version 2>&1 | head -1)"
    echo "fim-check: $("$FIM" --version)"
    echo "tree: $TREE, $(find "$TREE" | wc -l) entries, $(find "$TREE" -type f | wc -l) files"
    echo "cpus: $(nproc), load: $(cat /proc/loadavg)"
}

# fim SUBCOMMAND ARGS... : the fim-check command line (for `timed`, which
# cannot run shell functions).
fim() {
    FIM_CMD=("$FIM" "$@" --host-root "$TREE" --baseline "$WORK/fim.baseline" --config "$WORK/fim.toml"
        --key-file "$WORK/key" --node-name bench --nice 0 --no-io-idle)
}

bench_aide() {
    local i
    say "aide --init / --check x$RUNS ($AIDE_ATTRS)"
    forget aide-init aide-check
    for i in $(seq 1 "$RUNS"); do
        rm -f "$WORK/aide.db.new"; warm
        timed "aide-init-$i" aide --config "$WORK/aide.conf" --init
    done
    cp "$WORK/aide.db.new" "$WORK/aide.db"
    for i in $(seq 1 "$RUNS"); do
        warm
        timed "aide-check-$i" aide --config "$WORK/aide.conf" --check
    done
    ls -l "$WORK/aide.db"
}

bench_fim() {
    local i
    say "fim-check init / check x$RUNS ($ATTRS)"
    forget fim-init fim-check
    for i in $(seq 1 "$RUNS"); do
        warm
        fim init --force
        timed "fim-init-$i" "${FIM_CMD[@]}"
    done
    for i in $(seq 1 "$RUNS"); do
        warm
        fim check --fail-on any
        timed "fim-check-$i" "${FIM_CMD[@]}"
    done
    ls -l "$WORK/fim.baseline"
}

bench_floor() {
    local i bytes rate
    say "hashing floor"
    forget find-walk
    bytes=$(find "$TREE" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')
    # Column 6 of `openssl speed -evp sha256` is 16384-byte blocks, in kB/s.
    rate=$(openssl speed -seconds 3 -evp sha256 2>/dev/null | awk 'tolower($1) ~ /^sha2?-?256/ {v = $NF} END {sub(/k$/, "", v); print v * 1000}')
    for i in $(seq 1 "$RUNS"); do
        warm
        timed "find-walk-$i" find "$TREE" -printf '%s %m %i %T@\n'
    done
    echo "file bytes (per path): $bytes; single-core SHA-256: $rate B/s; cores: $(nproc)"
    echo "$bytes $rate $(nproc)" >"$WORK/floor.txt"
}

bench_rate() {
    local r bytes
    bytes=$(find "$TREE$RATE_SUBTREE" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')
    say "--max-read-rate on $RATE_SUBTREE ($bytes bytes)"
    echo "$bytes" >"$WORK/rate-bytes.txt"
    forget fim-rate
    for r in 0 500 100; do
        warm
        fim check --path "$RATE_SUBTREE" --max-read-rate "$r"
        timed "fim-rate-$r" "${FIM_CMD[@]}"
    done
}

cpu() { paste <(col "$1" 3) <(col "$1" 4) | awk '{print $1 + $2}' | median; }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
col() { awk -F'\t' -v p="^$1-[0-9]+\$" -v c="$2" '$1 ~ p {print $c}' "$RESULTS"; }

report() {
    say "results (wall s, user s, sys s, max RSS KiB, CPU stall s, load, rc)"
    column -t -s $'\t' "$RESULTS"
    local ai ac fim_i fc fr ar walk bytes rate cores floor
    ai=$(col aide-init 2 | median); ac=$(col aide-check 2 | median)
    fim_i=$(col fim-init 2 | median); fc=$(col fim-check 2 | median)
    ar=$(col aide-check 5 | sort -n | tail -1); fr=$(col fim-check 5 | sort -n | tail -1)
    walk=$(col find-walk 2 | sort -n | head -1)
    read -r bytes rate cores <"$WORK/floor.txt"
    floor=$(echo "$bytes / ($cores * $rate) + $walk" | bc -l)
    say "summary (medians of $RUNS warm runs)"
    printf 'aide --init   %7.2f s   fim-check init   %7.2f s   ratio %5.1fx\n' "$ai" "$fim_i" "$(echo "$ai / $fim_i" | bc -l)"
    printf 'aide --check  %7.2f s   fim-check check  %7.2f s   ratio %5.1fx (goal >= 15x)\n' "$ac" "$fc" "$(echo "$ac / $fc" | bc -l)"
    printf 'hashing floor %7.2f s   (%s B / (%s x %.0f MB/s) + %.2f s walk); check / floor = %.2fx (goal <= 1.5x)\n' \
        "$floor" "$bytes" "$cores" "$(echo "$rate / 1000000" | bc -l)" "$walk" "$(echo "$fc / $floor" | bc -l)"
    local aic acc fic fcc
    aic=$(cpu aide-init); acc=$(cpu aide-check); fic=$(cpu fim-init); fcc=$(cpu fim-check)
    say "CPU time (user+sys, medians): robust against other load on the machine"
    printf 'aide --init   %7.2f s   fim-check init   %7.2f s   ratio %5.1fx\n' "$aic" "$fic" "$(echo "$aic / $fic" | bc -l)"
    printf 'aide --check  %7.2f s   fim-check check  %7.2f s   ratio %5.1fx\n' "$acc" "$fcc" "$(echo "$acc / $fcc" | bc -l)"
    printf 'SHA-256 of every byte on one core: %.2f s CPU; fim-check check / that = %.2fx\n' \
        "$(echo "$bytes / $rate" | bc -l)" "$(echo "$fcc / ($bytes / $rate)" | bc -l)"
    printf 'peak RSS: aide --check %d KiB, fim-check check %d KiB: %.1f%% (goal <= 33%%)\n' "$ar" "$fr" "$(echo "100 * $fr / $ar" | bc -l)"
    if [ -f "$WORK/rate-bytes.txt" ]; then
        local b r w u s
        b=$(cat "$WORK/rate-bytes.txt")
        for r in 0 500 100; do
            read -r w u s < <(awk -F'\t' -v l="fim-rate-$r" '$1 == l {print $2, $3, $4}' "$RESULTS")
            printf -- '--max-read-rate %3s: %6.2f s, %7.1f MB/s achieved, CPU %4.0f%%\n' "$r" "$w" \
                "$(echo "$b / $w / 1000000" | bc -l)" "$(echo "100 * ($u + $s) / $w" | bc -l)"
        done
    fi
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(aide fim floor rate)
setup
for s in "${steps[@]}"; do
    case $s in
        aide) bench_aide ;;
        fim) bench_fim ;;
        floor) bench_floor ;;
        rate) bench_rate ;;
        report) ;;
        *) echo "unknown step $s (aide, fim, floor, rate, report)" >&2; exit 2 ;;
    esac
done
report
