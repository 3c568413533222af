#!/bin/sh
# shellcheck shell=sh
# nodeguard entrypoint library: the loop every per-purpose DaemonSet shares.
#
# Sourced by scripts/{bootstrap,scan-images,fim,bench-node}.sh. Each of those
# sets NG_COMPONENT and NG_TOOL, defines `ng_cycle` (one run of its tool, via
# `ng_run_tool`), and calls `ng_loop INTERVAL IOCLASS`.
#
# Shared behaviour, configured only through NODEGUARD_LOOP_* variables so that
# no name collides with a tool's own NODEGUARD_<FLAG> variables (the tools read
# those directly; the chart sets them):
#   NODEGUARD_LOOP_INTERVAL        seconds between runs (per-script default)
#   NODEGUARD_LOOP_JITTER          extra random 0..N seconds per sleep (default interval/10)
#   NODEGUARD_LOOP_SPLAY           random 0..N seconds before the first run (default 0)
#   NODEGUARD_LOOP_WINDOW          off-peak window "HH:MM-HH:MM" (UTC); runs start only inside it
#   NODEGUARD_LOOP_BACKOFF_INITIAL first retry delay after a failed run (default 30)
#   NODEGUARD_LOOP_BACKOFF_MAX     retry delay cap (default: the interval)
#   NODEGUARD_LOOP_RUN_TIMEOUT     seconds before a run is killed (default 3600)
#   NODEGUARD_LOOP_OUTPUT          jsonl (default: records to stdout + results) | json
#   NODEGUARD_LOOP_RESULTS_DIR     where full reports go (host path; default /var/lib/nodeguard/results/<component>)
#   NODEGUARD_LOOP_KEEP            reports kept in the results dir (default 24)
#   NODEGUARD_LOOP_TEXTFILE_DIR    node-exporter textfile directory for --metrics-file ("" = none)
#   NODEGUARD_LOOP_STATE_DIR       pod-local state: readiness, stderr capture (default /run/nodeguard)
#   NODEGUARD_LOOP_NICE            CPU niceness for the loop and its tools (default 10)
#   NODEGUARD_LOOP_IONICE_CLASS    I/O class: 1 realtime, 2 best-effort, 3 idle (default 3), "" = leave
#   NODEGUARD_LOOP_ONCE            "true": one run, exit with its status (tests, ad hoc jobs)
#
# A script may also set NG_QUIET_STATUSES (space-separated run statuses that
# log only their run line: one line per cycle for a state that repeats).
#
# Exit within 2 s of SIGTERM: sleeps are `sleep & wait` and the running tool
# gets TERM, then KILL after 1 s. A failed run never exits the loop (no crash
# loop): it backs off exponentially. Only a configuration error exits (2),
# with the reason in /dev/termination-log.

NG_SLEEP_PID=
NG_CHILD_PID=
NG_WATCHDOG_PID=
NG_RUN=0
NG_FAILURES=0

ng_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# A millisecond clock for durations: the kernel's uptime (monotonic, 10 ms
# resolution, there in every container); GNU date's %N where /proc is not
# mounted; whole seconds from busybox date as the last resort.
ng_now_ms() {
    if read -r ng_up _ </proc/uptime 2>/dev/null; then
        case $ng_up in
            *.??)
                # Centiseconds without leading zeros (they would read as octal).
                ng_cs=$(echo "$ng_up" | tr -d . | sed 's/^0*//')
                echo $((${ng_cs:-0} * 10))
                return
                ;;
        esac
    fi
    ng_ms=$(date -u +%s%N 2>/dev/null)
    case $ng_ms in
        *[!0-9]* | '') ng_ms=$(($(date -u +%s) * 1000)) ;;
        *) ng_ms=${ng_ms%??????} ;;
    esac
    printf '%s\n' "$ng_ms"
}

ng_log() {
    printf '%s nodeguard-%s: %s\n' "$(ng_now)" "$NG_COMPONENT" "$*" >&2
}

# A configuration error: say why (also to the kubelet's termination log) and exit 2.
ng_fatal() {
    ng_log "fatal: $*"
    ng_tl=${NODEGUARD_LOOP_TERMINATION_LOG:-/dev/termination-log}
    if [ -f "$ng_tl" ] && [ -w "$ng_tl" ]; then
        printf 'nodeguard-%s: %s\n' "$NG_COMPONENT" "$*" >"$ng_tl"
    fi
    exit 2
}

# ng_uint NAME VALUE: VALUE must be a non-negative decimal integer.
ng_uint() {
    case $2 in
        '' | *[!0-9]*) ng_fatal "$1 must be a non-negative integer of seconds, got '$2'" ;;
    esac
}

# JSON string body: escape backslash and quote, drop control characters.
ng_json_str() {
    printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g'
}

# Uniform random integer in 0..$1 (inclusive), from /dev/urandom (dash has no $RANDOM).
ng_random() {
    if [ "$1" -le 0 ]; then
        echo 0
        return
    fi
    ng_r=$(od -An -N4 -tu4 /dev/urandom | tr -d ' \n')
    echo $((ng_r % ($1 + 1)))
}

# "HH:MM" -> minutes since midnight, or fatal.
ng_hhmm() {
    case $1 in
        [0-1][0-9]:[0-5][0-9] | 2[0-3]:[0-5][0-9]) ;;
        *) ng_fatal "NODEGUARD_LOOP_WINDOW must be HH:MM-HH:MM (UTC), got '$NODEGUARD_LOOP_WINDOW'" ;;
    esac
    # Strip leading zeros: "08" is not a valid number in shell arithmetic.
    echo $(($(echo "${1%%:*}" | sed 's/^0//') * 60 + $(echo "${1#*:}" | sed 's/^0//')))
}

# Seconds until the off-peak window opens; 0 when inside it or when no window is set.
# A window may wrap midnight (22:00-04:00). Uses UTC: the image has no zoneinfo.
ng_window_wait() {
    [ -n "$NG_WINDOW" ] || {
        echo 0
        return
    }
    ng_start=$(ng_hhmm "${NG_WINDOW%-*}")
    ng_end=$(ng_hhmm "${NG_WINDOW#*-}")
    ng_h=$(date -u +%H | sed 's/^0//')
    ng_m=$(date -u +%M | sed 's/^0//')
    ng_s=$(date -u +%S | sed 's/^0//')
    ng_cur=$(((${ng_h:-0} * 60 + ${ng_m:-0}) * 60 + ${ng_s:-0}))
    ng_start=$((ng_start * 60))
    ng_end=$((ng_end * 60))
    if [ "$ng_start" -le "$ng_end" ]; then
        if [ "$ng_cur" -ge "$ng_start" ] && [ "$ng_cur" -lt "$ng_end" ]; then
            echo 0
            return
        fi
    elif [ "$ng_cur" -ge "$ng_start" ] || [ "$ng_cur" -lt "$ng_end" ]; then
        echo 0
        return
    fi
    echo $((((ng_start - ng_cur) % 86400 + 86400) % 86400))
}

# Interruptible sleep: SIGTERM runs the trap at once instead of after `sleep`.
ng_sleep() {
    [ "$1" -gt 0 ] || return 0
    sleep "$1" &
    NG_SLEEP_PID=$!
    wait "$NG_SLEEP_PID" 2>/dev/null
    NG_SLEEP_PID=
}

# ng_kill SIGNAL PID: signal the process group PID leads (the tool and whatever
# it started), then PID itself. dash's kill needs `--` before a negative PID,
# busybox's rejects it (after signalling): try both spellings.
ng_kill() {
    kill -s "$1" -- "-$2" 2>/dev/null || kill -s "$1" "-$2" 2>/dev/null
    kill -s "$1" "$2" 2>/dev/null
}

ng_on_signal() {
    ng_log "received $1, stopping"
    [ -z "$NG_SLEEP_PID" ] || kill "$NG_SLEEP_PID" 2>/dev/null
    [ -z "$NG_WATCHDOG_PID" ] || ng_kill KILL "$NG_WATCHDOG_PID"
    if [ -n "$NG_CHILD_PID" ]; then
        ng_kill TERM "$NG_CHILD_PID"
        ng_i=0
        while kill -0 "$NG_CHILD_PID" 2>/dev/null && [ "$ng_i" -lt 10 ]; do
            sleep 0.1
            ng_i=$((ng_i + 1))
        done
        ng_kill KILL "$NG_CHILD_PID"
        # The interrupted run's partial output is not a report.
        rm -f "$NG_TMP_OUT"
    fi
    exit 143
}

# Read and check the shared configuration. $1: default interval, $2: default I/O class.
ng_setup() {
    NG_INTERVAL=${NODEGUARD_LOOP_INTERVAL:-$1}
    ng_uint NODEGUARD_LOOP_INTERVAL "$NG_INTERVAL"
    [ "$NG_INTERVAL" -gt 0 ] || ng_fatal "NODEGUARD_LOOP_INTERVAL must be > 0"
    NG_JITTER=${NODEGUARD_LOOP_JITTER:-$((NG_INTERVAL / 10))}
    ng_uint NODEGUARD_LOOP_JITTER "$NG_JITTER"
    NG_SPLAY=${NODEGUARD_LOOP_SPLAY:-0}
    ng_uint NODEGUARD_LOOP_SPLAY "$NG_SPLAY"
    NG_BACKOFF_INITIAL=${NODEGUARD_LOOP_BACKOFF_INITIAL:-30}
    ng_uint NODEGUARD_LOOP_BACKOFF_INITIAL "$NG_BACKOFF_INITIAL"
    NG_BACKOFF_MAX=${NODEGUARD_LOOP_BACKOFF_MAX:-$NG_INTERVAL}
    ng_uint NODEGUARD_LOOP_BACKOFF_MAX "$NG_BACKOFF_MAX"
    NG_RUN_TIMEOUT=${NODEGUARD_LOOP_RUN_TIMEOUT:-3600}
    ng_uint NODEGUARD_LOOP_RUN_TIMEOUT "$NG_RUN_TIMEOUT"
    [ "$NG_RUN_TIMEOUT" -gt 0 ] || ng_fatal "NODEGUARD_LOOP_RUN_TIMEOUT must be > 0"
    NG_KEEP=${NODEGUARD_LOOP_KEEP:-24}
    ng_uint NODEGUARD_LOOP_KEEP "$NG_KEEP"
    [ "$NG_KEEP" -gt 0 ] || ng_fatal "NODEGUARD_LOOP_KEEP must be > 0"
    NG_WINDOW=${NODEGUARD_LOOP_WINDOW:-}
    if [ -n "$NG_WINDOW" ]; then
        ng_hhmm "${NG_WINDOW%-*}" >/dev/null
        ng_hhmm "${NG_WINDOW#*-}" >/dev/null
        case $NG_WINDOW in ?????-?????) ;; *) ng_fatal "NODEGUARD_LOOP_WINDOW must be HH:MM-HH:MM (UTC), got '$NG_WINDOW'" ;; esac
    fi
    NG_OUTPUT=${NODEGUARD_LOOP_OUTPUT:-jsonl}
    case $NG_OUTPUT in json | jsonl) ;; *) ng_fatal "NODEGUARD_LOOP_OUTPUT must be json or jsonl, got '$NG_OUTPUT'" ;; esac
    NG_RESULTS_DIR=${NODEGUARD_LOOP_RESULTS_DIR:-/var/lib/nodeguard/results/$NG_COMPONENT}
    NG_STATE_DIR=${NODEGUARD_LOOP_STATE_DIR:-/run/nodeguard}
    NG_TEXTFILE_DIR=${NODEGUARD_LOOP_TEXTFILE_DIR:-}
    NG_ONCE=${NODEGUARD_LOOP_ONCE:-false}
    NG_NODE=${NODEGUARD_NODE_NAME:-$(hostname 2>/dev/null || echo unknown)}
    for ng_d in "$NG_RESULTS_DIR" "$NG_STATE_DIR" ${NG_TEXTFILE_DIR:+"$NG_TEXTFILE_DIR"}; do
        mkdir -p "$ng_d" 2>/dev/null || ng_fatal "cannot create directory $ng_d"
        [ -w "$ng_d" ] || ng_fatal "directory $ng_d is not writable"
    done
    command -v "$NG_TOOL" >/dev/null 2>&1 || ng_fatal "$NG_TOOL not found in PATH ($PATH)"

    # Be gentle with the node: everything this loop starts inherits both.
    ng_nice=${NODEGUARD_LOOP_NICE:-10}
    ng_uint NODEGUARD_LOOP_NICE "$ng_nice"
    if [ "$ng_nice" -gt 0 ]; then
        renice -n "$ng_nice" -p $$ >/dev/null 2>&1 || ng_log "warning: renice failed; running at default CPU priority"
    fi
    ng_ionice=${NODEGUARD_LOOP_IONICE_CLASS-$2}
    if [ -n "$ng_ionice" ]; then
        case $ng_ionice in 1 | 2 | 3) ;; *) ng_fatal "NODEGUARD_LOOP_IONICE_CLASS must be 1, 2 or 3, got '$ng_ionice'" ;; esac
        ionice -c "$ng_ionice" -p $$ >/dev/null 2>&1 || ng_log "warning: ionice -c $ng_ionice failed; running at default I/O priority"
    fi

    trap 'ng_on_signal TERM' TERM
    trap 'ng_on_signal INT' INT
    # Ready from the start, unready after a failed run: a DaemonSet rollout
    # waits for each new pod to be Ready, and waiting for a first run (after
    # the splay) on every node would stretch a rollout over hours.
    : >"$NG_STATE_DIR/ready"
}

# Delete all but the newest $NG_KEEP reports of one kind ($1: file prefix, $2: suffix).
ng_prune() {
    # Names embed a sortable UTC timestamp, so `sort` orders them by age.
    for ng_f in "$NG_RESULTS_DIR/$1"-[0-9]*Z."$2"; do
        [ -f "$ng_f" ] && printf '%s\n' "$ng_f"
    done | sort -r | tail -n +$((NG_KEEP + 1)) | while IFS= read -r ng_old; do
        rm -f "$ng_old"
    done
}

# ng_run_tool ACTION [ARGS...]: run `$NG_TOOL ARGS...` once (ACTION names the
# run in file names and the JSON line) in its own process group,
# with a timeout; keep its report in the results dir (atomically: temp name in
# the same dir, then rename), its stderr on ours, and print the run's JSON line.
# Sets NG_RC (the tool's exit code; 124 on timeout) and returns 0.
ng_run_tool() {
    ng_action=$1
    shift
    NG_RUN=$((NG_RUN + 1))
    ng_started=$(ng_now)
    ng_t0=$(ng_now_ms)
    ng_stamp=$(date -u +%Y%m%dT%H%M%SZ)
    ng_name="$NG_TOOL-$ng_action-$ng_stamp.$NG_OUTPUT"
    NG_TMP_OUT="$NG_RESULTS_DIR/.$ng_name.tmp"
    ng_err="$NG_STATE_DIR/stderr"
    # Output format and metrics file through the tools' common environment
    # variables, which work wherever the subcommand puts its flags.
    NODEGUARD_FORMAT=$NG_OUTPUT
    NODEGUARD_METRICS_FILE=
    if [ -n "$NG_TEXTFILE_DIR" ]; then
        NODEGUARD_METRICS_FILE="$NG_TEXTFILE_DIR/nodeguard_$(echo "$NG_TOOL" | tr - _).prom"
    fi
    export NODEGUARD_FORMAT
    if [ -n "$NODEGUARD_METRICS_FILE" ]; then export NODEGUARD_METRICS_FILE; else unset NODEGUARD_METRICS_FILE; fi

    setsid "$NG_TOOL" "$@" >"$NG_TMP_OUT" 2>"$ng_err" </dev/null &
    NG_CHILD_PID=$!
    # The watchdog: after the timeout, it marks the run as timed out, then
    # sends TERM and, 5 s later, KILL to the tool's process group.
    ng_timeout_mark="$NG_STATE_DIR/timed-out"
    rm -f "$ng_timeout_mark"
    # shellcheck disable=SC2016 # expanded by the watchdog's own shell
    setsid sh -c 'sleep "$1"
        : >"$3"
        for s in TERM KILL; do
            kill -s $s -- "-$2" 2>/dev/null || kill -s $s "-$2" 2>/dev/null
            kill -s $s "$2" 2>/dev/null
            sleep 5
        done' \
        ng-watchdog "$NG_RUN_TIMEOUT" "$NG_CHILD_PID" "$ng_timeout_mark" >/dev/null 2>&1 </dev/null &
    NG_WATCHDOG_PID=$!
    wait "$NG_CHILD_PID"
    NG_RC=$?
    NG_CHILD_PID=
    ng_kill KILL "$NG_WATCHDOG_PID"
    wait "$NG_WATCHDOG_PID" 2>/dev/null
    ng_timed_out=false
    if [ -e "$ng_timeout_mark" ]; then
        ng_timed_out=true
        NG_RC=124
        rm -f "$ng_timeout_mark"
    fi
    NG_WATCHDOG_PID=

    if [ "$ng_timed_out" = true ]; then
        NG_STATUS=timeout
    else
        ng_classify "$NG_RC"
    fi
    # A status the script declares quiet (NG_QUIET_STATUSES, e.g. bootstrap's
    # not_configured, which repeats every cycle until someone acts) logs only
    # its run line, which carries the tool's last stderr line; the full
    # report is still kept in the results directory.
    ng_quiet=false
    case " ${NG_QUIET_STATUSES:-} " in *" $NG_STATUS "*) ng_quiet=true ;; esac

    # The tool's stderr (already redacted by the tool) goes to the pod log.
    [ "$ng_quiet" = true ] || cat "$ng_err" >&2
    ng_last_err=$(grep -v '^[[:space:]]*$' "$ng_err" | tail -n 1)
    : >"$ng_err"
    [ "$ng_timed_out" != true ] || ng_last_err="killed after NODEGUARD_LOOP_RUN_TIMEOUT=${NG_RUN_TIMEOUT}s"

    ng_report=
    if [ -s "$NG_TMP_OUT" ]; then
        mv -f "$NG_TMP_OUT" "$NG_RESULTS_DIR/$ng_name"
        ng_report="$NG_RESULTS_DIR/$ng_name"
        ng_prune "$NG_TOOL-$ng_action" "$NG_OUTPUT"
        [ "$NG_OUTPUT" != jsonl ] || [ "$ng_quiet" = true ] || cat "$ng_report"
    else
        rm -f "$NG_TMP_OUT"
    fi
    ng_emit "$ng_action" "$ng_started" "$ng_t0" "$ng_report" "$ng_last_err"
}

# ng_fail_run ACTION MESSAGE: a run that could not start the tool (e.g. a
# precondition failed) still counts as a failed run with its JSON line.
ng_fail_run() {
    NG_RUN=$((NG_RUN + 1))
    NG_RC=2
    NG_STATUS=error
    ng_log "error: $2"
    ng_emit "$1" "$(ng_now)" "$(ng_now_ms)" "" "$2"
}

# ng_emit ACTION STARTED T0_MS REPORT ERROR: count the run and print its JSON line.
ng_emit() {
    # `unsupported` (a host the tool cannot serve) and `not_configured` (values
    # missing: only a person can fix it) are answers, not failures to retry
    # faster: the next run is an interval later.
    case $NG_STATUS in ok | findings | unsupported | not_configured) NG_FAILURES=0 ;; *) NG_FAILURES=$((NG_FAILURES + 1)) ;; esac
    ng_t1=$(ng_now_ms)
    printf '{"schema_version":1,"tool":"%s","record":"entrypoint_run","component":"%s","action":"%s","node":"%s","timestamp":"%s","started_at":"%s","duration_ms":%s,"run":%s,"exit_code":%s,"status":"%s","consecutive_failures":%s,"report_path":%s,"error":%s}\n' \
        "$NG_TOOL" "$NG_COMPONENT" "$1" "$(ng_json_str "$NG_NODE")" "$(ng_now)" "$2" \
        $((ng_t1 - $3)) "$NG_RUN" "$NG_RC" "$NG_STATUS" "$NG_FAILURES" \
        "$(if [ -n "$4" ]; then printf '"%s"' "$(ng_json_str "$4")"; else echo null; fi)" \
        "$(case $NG_STATUS in ok | findings) echo null ;; *) printf '"%s"' "$(ng_json_str "$5")" ;; esac)"
}

# Map an exit code to a status (0 ok, 1 findings, 2+ error). Scripts whose tool
# has its own codes >= 3 override this after sourcing the library.
ng_classify() {
    case $1 in
        0) NG_STATUS=ok ;;
        1) NG_STATUS=findings ;;
        *) NG_STATUS=error ;;
    esac
}

# Delay before the next run: the interval after success, exponential backoff
# (capped) after consecutive failures; plus random jitter either way.
ng_next_delay() {
    if [ "$NG_FAILURES" -eq 0 ]; then
        ng_delay=$NG_INTERVAL
    else
        ng_delay=$NG_BACKOFF_INITIAL
        ng_i=1
        while [ "$ng_i" -lt "$NG_FAILURES" ] && [ "$ng_delay" -lt "$NG_BACKOFF_MAX" ]; do
            ng_delay=$((ng_delay * 2))
            ng_i=$((ng_i + 1))
        done
        [ "$ng_delay" -le "$NG_BACKOFF_MAX" ] || ng_delay=$NG_BACKOFF_MAX
    fi
    echo $((ng_delay + $(ng_random "$NG_JITTER")))
}

# Readiness, for the kubelet's exec probe: the configuration is valid and the
# last run, if any, did not fail.
ng_ready() {
    NG_STATE_DIR=${NODEGUARD_LOOP_STATE_DIR:-/run/nodeguard}
    [ -f "$NG_STATE_DIR/ready" ]
}

ng_mark_ready() {
    case $NG_STATUS in
        ok | findings | unsupported) : >"$NG_STATE_DIR/ready" ;;
        *) rm -f "$NG_STATE_DIR/ready" ;;
    esac
}

# The loop. $1: default interval (s), $2: default I/O class. Calls ng_cycle.
ng_loop() {
    ng_setup "$1" "$2"
    ng_log "starting: interval ${NG_INTERVAL}s, jitter ${NG_JITTER}s, window ${NG_WINDOW:-none}, results $NG_RESULTS_DIR"
    if [ "$NG_ONCE" != true ]; then
        ng_sleep "$(ng_random "$NG_SPLAY")"
    fi
    while :; do
        if [ "$NG_ONCE" != true ]; then
            ng_wait=$(ng_window_wait)
            if [ "$ng_wait" -gt 0 ]; then
                ng_wait=$((ng_wait + $(ng_random "$NG_JITTER")))
                ng_log "outside the window $NG_WINDOW UTC; next run in ${ng_wait}s"
                ng_sleep "$ng_wait"
                continue
            fi
        fi
        ng_cycle
        ng_mark_ready
        if [ "$NG_ONCE" = true ]; then
            exit "$NG_RC"
        fi
        ng_delay=$(ng_next_delay)
        [ "$NG_FAILURES" -eq 0 ] || ng_log "run failed ($NG_STATUS, $NG_FAILURES in a row); retrying in ${ng_delay}s"
        ng_sleep "$ng_delay"
    done
}
