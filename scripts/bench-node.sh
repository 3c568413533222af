#!/bin/sh
# Entrypoint of the bench-node DaemonSet: CIS Kubernetes Benchmark node checks
# at start and every interval (default 6 h). The pod runs with hostPID so that
# bench-node can read the kubelet's command line; nothing else is needed.
#
# Usage: bench-node.sh [run|ready]. Tool flags come from NODEGUARD_* variables
# (NODEGUARD_HOST_ROOT, NODEGUARD_TARGETS, ...); loop settings are described in lib.sh.
set -u
NG_COMPONENT=bench-node
NG_TOOL=bench-node
# shellcheck source=scripts/lib.sh
. "${NODEGUARD_LOOP_LIB:-$(dirname "$0")/lib.sh}"

ng_cycle() {
    ng_run_tool run
}

case ${1:-run} in
    run) ng_loop 21600 3 ;;
    ready) ng_ready ;;
    *) ng_fatal "usage: $0 [run|ready]" ;;
esac
