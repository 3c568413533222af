#!/usr/bin/env bash
# CI setup for bench-node's tests: promtool (Debian's prometheus package)
# validates the metrics file. Idempotent; run as root.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
# Only promtool is wanted: keep the package's server from starting.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
status=0
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends prometheus >/dev/null || status=$?
if [ "$created_policy" -eq 1 ]; then
    rm -f /usr/sbin/policy-rc.d
fi
exit "$status"
