#!/bin/sh
# Entrypoint of the bootstrap DaemonSet: keeps a vendor security agent installed,
# configured and running on the host with install-agent.
#
# NODEGUARD_LOOP_MODE=install (default): `install-agent install` at start and
#   every interval (default 5 min); install-agent acts only on drift, so a
#   converged host costs one status read. Readiness (`bootstrap.sh ready`, the
#   pod's exec probe) is `install-agent status`, live.
# NODEGUARD_LOOP_MODE=uninstall: `install-agent uninstall` (idempotent) at start
#   and every interval; ready once it succeeded. This is how the agent is removed
#   from every node before `helm uninstall` (docs/deploy.md). Stopping this pod
#   never stops the agent: there is no preStop hook.
#
# Tool flags come from NODEGUARD_* variables: NODEGUARD_PROFILE (required),
# NODEGUARD_CREDENTIALS_DIR, NODEGUARD_HOST_ROOT, ...
set -u
NG_COMPONENT=bootstrap
NG_TOOL=install-agent
# shellcheck source=scripts/lib.sh
. "${NODEGUARD_LOOP_LIB:-$(dirname "$0")/lib.sh}"

BOOTSTRAP_MODE=${NODEGUARD_LOOP_MODE:-install}

# install-agent's own exit codes (install-agent --help): 3 a step failed,
# 4 another run holds the host lock, 5 package checksum mismatch, 6 agent not
# installed by nodeguard, 7 the host cannot get this agent (immutable OS, no
# package manager or package), 8 not configured. 7 is not a failure to retry quickly: the run
# line says `unsupported`, the next try is a full interval later, and the pod
# counts as ready so that such nodes do not hold up a rollout forever (the
# report and the agent metrics still say the agent is missing).
# 8 not_configured: the profile's package sums are placeholders, a package
# file is missing, or a required credential is not set. Only a person can fix
# that, so the pod neither exits nor restarts nor retries faster: it stays
# Running and not Ready (readiness is `install-agent status`, which says
# not_configured too), and each cycle logs exactly one line, the run line,
# whose "error" is install-agent's message naming the values to set
# (the metric nodeguard_install_agent_configured is 0; an alert watches it).
NG_QUIET_STATUSES=not_configured
ng_classify() {
    case $1 in
        0) NG_STATUS=ok ;;
        1) NG_STATUS=findings ;;
        4) NG_STATUS=busy ;;
        7) NG_STATUS=unsupported ;;
        8) NG_STATUS=not_configured ;;
        *) NG_STATUS=error ;;
    esac
}

ng_cycle() {
    ng_run_tool "$BOOTSTRAP_MODE" "$BOOTSTRAP_MODE"
    if [ "$NG_STATUS" = unsupported ]; then
        : >"$NG_STATE_DIR/unsupported"
    else
        rm -f "$NG_STATE_DIR/unsupported"
    fi
}

bootstrap_ready() {
    if [ -e "${NODEGUARD_LOOP_STATE_DIR:-/run/nodeguard}/unsupported" ]; then
        return 0
    fi
    if [ "$BOOTSTRAP_MODE" = uninstall ]; then
        ng_ready
        return
    fi
    # Ready means the agent is converged right now, not that a run once succeeded.
    NODEGUARD_FORMAT=json install-agent status >/dev/null 2>&1
}

case $BOOTSTRAP_MODE in
    install | uninstall) ;;
    *) ng_fatal "NODEGUARD_LOOP_MODE must be install or uninstall, got '$BOOTSTRAP_MODE'" ;;
esac
[ -n "${NODEGUARD_PROFILE:-}" ] || ng_fatal "NODEGUARD_PROFILE is not set (the agent profile file)"

case ${1:-run} in
    run) ng_loop 300 2 ;;
    ready) bootstrap_ready ;;
    *) ng_fatal "usage: $0 [run|ready]" ;;
esac
