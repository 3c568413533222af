#!/bin/sh
# Entrypoint of the scan-images DaemonSet: every image on the node scanned with
# Trivy, each unique image once per cycle, at start and every interval (default
# 1 h; scan-images' own result cache skips unchanged images). Per-image Trivy
# reports go to NODEGUARD_OUTPUT_DIR (default: <results>/images, kept by
# scan-images itself); the cycle's summary report to the results dir.
#
# Usage: scan-images.sh [run|ready]. Tool flags come from NODEGUARD_* variables
# (NODEGUARD_HOST_ROOT, NODEGUARD_RUNTIME_ENDPOINT, NODEGUARD_CACHE_DIR, ...).
set -u
NG_COMPONENT=scan-images
NG_TOOL=scan-images
# shellcheck source=scripts/lib.sh
. "${NODEGUARD_LOOP_LIB:-$(dirname "$0")/lib.sh}"

ng_cycle() {
    ng_run_tool scan
}

case ${1:-run} in
    run)
        NODEGUARD_OUTPUT_DIR=${NODEGUARD_OUTPUT_DIR:-${NODEGUARD_LOOP_RESULTS_DIR:-/var/lib/nodeguard/results/$NG_COMPONENT}/images}
        export NODEGUARD_OUTPUT_DIR
        ng_loop 3600 3
        ;;
    ready) ng_ready ;;
    *) ng_fatal "usage: $0 [run|ready]" ;;
esac
