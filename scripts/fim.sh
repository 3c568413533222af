#!/bin/sh
# Entrypoint of the fim DaemonSet: file integrity monitoring of the host.
#
# First start on a node (no baseline yet): `fim-check init`. Then `fim-check
# check` at every interval (default 1 h). The baseline is never updated here:
# accepting changes is an explicit operator action (docs/deploy.md):
#   kubectl -n nodeguard exec <fim pod> -- fim-check update
# Once a baseline has been created on a node, a missing baseline is an error,
# not a reason to re-initialise: otherwise deleting it would silently re-baseline
# whatever an intruder changed.
#
# Usage: fim.sh [run|ready]. Tool flags come from NODEGUARD_* variables
# (NODEGUARD_HOST_ROOT, NODEGUARD_BASELINE, NODEGUARD_KEY_FILE, NODEGUARD_CONFIG, ...).
set -u
NG_COMPONENT=fim
NG_TOOL=fim-check
# shellcheck source=scripts/lib.sh
. "${NODEGUARD_LOOP_LIB:-$(dirname "$0")/lib.sh}"

NODEGUARD_BASELINE=${NODEGUARD_BASELINE:-/var/lib/nodeguard/fim/baseline}
export NODEGUARD_BASELINE
# Written next to the baseline after the first successful init.
FIM_MARKER="$(dirname "$NODEGUARD_BASELINE")/.$(basename "$NODEGUARD_BASELINE").initialized"

ng_cycle() {
    if [ -e "$NODEGUARD_BASELINE" ]; then
        ng_run_tool check check
    elif [ -e "$FIM_MARKER" ]; then
        ng_fail_run check "baseline $NODEGUARD_BASELINE is missing although it was created on $(cat "$FIM_MARKER" 2>/dev/null); refusing to re-initialise: investigate, then run fim-check init by hand and remove $FIM_MARKER"
    else
        mkdir -p "$(dirname "$NODEGUARD_BASELINE")" || {
            ng_fail_run init "cannot create $(dirname "$NODEGUARD_BASELINE")"
            return
        }
        ng_run_tool init init
        if [ "$NG_STATUS" = ok ]; then
            ng_now >"$FIM_MARKER"
            ng_log "baseline created at $NODEGUARD_BASELINE"
        fi
    fi
}

case ${1:-run} in
    run) ng_loop 3600 3 ;;
    ready) ng_ready ;;
    *) ng_fatal "usage: $0 [run|ready]" ;;
esac
