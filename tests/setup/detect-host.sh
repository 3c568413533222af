#!/usr/bin/env bash
# CI setup for the detect-host tests: the distribution's python3 (its
# platform.freedesktop_os_release() is the peer reader the real-machine test
# compares with) and mkfifo (coreutils) for the hostile-tree test.
# Idempotent; run as root by tests/run-all.sh.
set -euo pipefail

need=()
[ -x /usr/bin/python3 ] || need+=(python3)
command -v mkfifo >/dev/null 2>&1 || need+=(coreutils)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}"
fi
/usr/bin/python3 -c 'import platform; platform.freedesktop_os_release()' >/dev/null
