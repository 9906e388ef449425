#!/usr/bin/env bash
# Installs everything Kiln needs on a fresh Debian 12 machine (run as root, or with sudo):
# host packages, npm dependencies (compiling the daemon), and the builder guest image.
# Safe to run again: every step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Host packages: QEMU (microvm), skopeo/buildah (registry clients in tests), debootstrap and
# friends (guest image recipes), docker-registry (the registry benchmark's baseline and the
# mirror tests' upstream), apache2-utils (htpasswd for that upstream's Basic auth), tmux (the
# CLI's pseudo-terminal tests). runc: the OCI runtime the host's Buildah runs RUN steps with in
# the engine tests (`--isolation oci`, as in the guest); Debian's buildah only recommends it.
PACKAGES=(
  qemu-system-x86 qemu-utils
  skopeo buildah uidmap runc
  debootstrap busybox-static e2fsprogs cpio zstd kmod socat
  docker-registry apache2-utils
  ca-certificates curl iproute2
  tmux
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Debian docker-registry package starts a system service on :5000; Kiln's benchmark starts
# its own instance on a free port, so the system one is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

echo "setup: npm ci"
npm ci --no-audit --no-fund

echo "setup: builder guest image"
bash scripts/build-image.sh
