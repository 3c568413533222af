#!/usr/bin/env bash
# CI setup for the cluster view's tests (tests/cluster_report.rs):
# - prometheus (promtool: check/test rules; the server: end-to-end alerts)
#   and prometheus-node-exporter (textfile collector), both served on
#   loopback only by the tests;
# - chromium (headless: the HTML report renders, screenshot) with a font.
# Idempotent: apt-get install is a no-op when the packages are present.
set -euo pipefail

packages=(prometheus prometheus-node-exporter chromium fonts-dejavu-core)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packaged services may start on the default ports; the tests do not
# use them: they run their own instances on free loopback ports.
promtool --version | head -n1
prometheus-node-exporter --version 2>&1 | head -n1
chromium --version 2>/dev/null
