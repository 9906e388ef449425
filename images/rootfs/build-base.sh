#!/usr/bin/env bash
# Builds the Debian base of the builder root filesystem into $1 (a new directory):
# debootstrap minbase bookworm, then the packages of images/rootfs/packages.txt, then trims
# docs, man pages, locales, apt lists and caches. Needs root. Its output is cached by
# scripts/build-image.sh keyed on this script, the package list and the mirror.
set -euo pipefail

target="$1"
here="$(cd "$(dirname "$0")" && pwd)"
mirror="${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${KILN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt")

debootstrap --variant=minbase bookworm "$target" "$mirror" >"$target.debootstrap.log" 2>&1 || {
  tail -n 30 "$target.debootstrap.log" >&2
  exit 1
}

cat >"$target/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security_mirror bookworm-security main
SOURCES

# Keep the chroot from starting services while packages install.
printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
chmod 0755 "$target/usr/sbin/policy-rc.d"

cleanup() {
  umount "$target/proc" 2>/dev/null || true
  umount "$target/sys" 2>/dev/null || true
  umount "$target/dev/pts" 2>/dev/null || true
  umount "$target/dev" 2>/dev/null || true
}
trap cleanup EXIT
mount -t proc proc "$target/proc"
mount -t sysfs sysfs "$target/sys"
mount --bind /dev "$target/dev"
mount --bind /dev/pts "$target/dev/pts"

chroot "$target" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get update -qq
chroot "$target" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >"$target.apt.log" 2>&1 || {
  tail -n 30 "$target.apt.log" >&2
  exit 1
}
chroot "$target" /usr/bin/env LC_ALL=C apt-get clean
# The unprivileged user rootless BuildKit runs as (docs/architecture.md#isolation): uid/gid 1000,
# no login shell, and a subordinate range of 65536 ids for the user namespace rootlesskit
# creates (newuidmap/newgidmap read /etc/subuid and /etc/subgid).
chroot "$target" /usr/sbin/groupadd --gid 1000 kiln-build
chroot "$target" /usr/sbin/useradd --uid 1000 --gid 1000 --home-dir /home/kiln-build \
  --create-home --shell /usr/sbin/nologin kiln-build
echo "kiln-build:100000:65536" >"$target/etc/subuid"
echo "kiln-build:100000:65536" >"$target/etc/subgid"
cleanup
trap - EXIT

rm -f "$target/usr/sbin/policy-rc.d"
# Trim what a builder never reads.
rm -rf "$target"/usr/share/doc/* "$target"/usr/share/man/* "$target"/usr/share/info/* \
  "$target"/usr/share/locale/* "$target"/usr/share/lintian "$target"/usr/share/bash-completion \
  "$target"/var/lib/apt/lists/* "$target"/var/cache/apt/* "$target"/var/cache/debconf/*-old \
  "$target"/var/log/* "$target"/tmp/*
# Deterministic machine id: empty, as on a fresh image.
: >"$target/etc/machine-id"
rm -f "$target.debootstrap.log" "$target.apt.log"
