#!/usr/bin/env bash
# Installs what podchart needs on a Debian machine, only what is missing, then builds it.
# Idempotent and quiet when everything is already there. Run as root.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

if [ "$(id -u)" != 0 ]; then
  echo "podchart setup: run as root (podchart manages mounts, namespaces and containers)" >&2
  exit 1
fi

# Debian packages: the OCI runtimes, the shim, the pause process, CNI plugins, ip, setfattr (image
# layers' xattrs and opaque dirs), socat (PortForward connects through it in a pod's netns), criu
# (CheckpointContainer: probed, and why it cannot run said, runtime/criu.ts); and for
# the tests: a real registry, htpasswd, openssl (token auth), busybox (images are built from it),
# zstd (zstd layers) and chromium (the inspector in a browser).
APT_PACKAGES=(runc crun conmon catatonit containernetworking-plugins iproute2 iptables util-linux mount attr socat criu
  docker-registry apache2-utils openssl busybox zstd chromium)
source scripts/apt-ensure.sh
apt_ensure "podchart setup" "${APT_PACKAGES[@]}"

# Pod networking: podchart's default bridge config, unless the node already has a CNI config.
if ! ls /etc/cni/net.d/*.conf /etc/cni/net.d/*.conflist /etc/cni/net.d/*.json >/dev/null 2>&1; then
  echo "podchart setup: installing the default CNI config /etc/cni/net.d/10-podchart.conflist"
  mkdir -p /etc/cni/net.d
  cp config/cni/10-podchart.conflist /etc/cni/net.d/10-podchart.conflist
fi
# Pods reach beyond their bridge only with forwarding on.
sysctl -qw net.ipv4.ip_forward=1 || echo "podchart setup: could not enable net.ipv4.ip_forward; pods will not reach beyond their bridge" >&2

# npm dependencies (better-sqlite3 builds from source with the toolchain here).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "podchart setup: installing npm dependencies"
  npm ci --no-audit --no-fund
fi

rm -rf dist
npx --no-install tsc -p tsconfig.json
