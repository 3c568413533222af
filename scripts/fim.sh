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
# NODEGUARD_FIM_MODE=watch (chart value fim.mode): instead of `check` at every
# interval, run `fim-check watch` (one JSON line per change as it happens, on
# stdout = the pod log) with a full check every interval inside it. The
# watcher never exits by itself: any exit (a replaced or tampered baseline:
# 3/4, a crash) is a failed run, restarted with the loop's exponential
# backoff (NODEGUARD_LOOP_BACKOFF_INITIAL, doubling, capped at
# NODEGUARD_LOOP_BACKOFF_MAX). SIGTERM reaches it through ng_on_signal.
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

FIM_MODE=${NODEGUARD_FIM_MODE:-periodic}
case $FIM_MODE in
    periodic | watch) ;;
    *) ng_fatal "NODEGUARD_FIM_MODE must be periodic or watch, got '$FIM_MODE'" ;;
esac

# The long-running watcher: its records go straight to the pod log; the run
# is logged (entrypoint_run line) when it ends, which is always a failure.
fim_watch() {
    NG_RUN=$((NG_RUN + 1))
    fw_started=$(ng_now)
    fw_t0=$(ng_now_ms)
    NG_TMP_OUT=
    if [ -n "$NG_TEXTFILE_DIR" ]; then
        NODEGUARD_METRICS_FILE="$NG_TEXTFILE_DIR/nodeguard_fim_check.prom"
        export NODEGUARD_METRICS_FILE
    fi
    ng_log "watching (full check every ${NG_INTERVAL}s)"
    setsid "$NG_TOOL" watch --full-check-interval "$NG_INTERVAL" </dev/null &
    NG_CHILD_PID=$!
    wait "$NG_CHILD_PID"
    NG_RC=$?
    NG_CHILD_PID=
    NG_STATUS=error
    ng_emit watch "$fw_started" "$fw_t0" "" "fim-check watch exited with code $NG_RC (3: baseline tampered, 4: baseline for another node/policy); restarting after backoff"
}

ng_cycle() {
    if [ -e "$NODEGUARD_BASELINE" ] && [ "$FIM_MODE" = watch ]; then
        fim_watch
    elif [ -e "$NODEGUARD_BASELINE" ]; then
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
            [ "$FIM_MODE" != watch ] || fim_watch
        fi
    fi
}

case ${1:-run} in
    run) ng_loop 3600 3 ;;
    ready) ng_ready ;;
    *) ng_fatal "usage: $0 [run|ready]" ;;
esac
