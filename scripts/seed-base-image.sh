#!/usr/bin/env bash
# Seeds Kiln's shared base-image namespace with a tiny busybox image (library/…, docs/contracts.md#registry-namespaces),
# built on the host from Debian's busybox-static with buildah — no internet needed.
#
#   scripts/seed-base-image.sh <registry host:port> <operator API token (scope registry:admin)> [name:tag]
#
# Pushes <registry>/library/<name:tag> (default busybox:latest) over plain HTTP, with the API
# token as the Basic password (the registry accepts that). Buildah runs with its own storage in
# a temp dir, so it never touches (or races with) the host's containers storage.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 <registry host:port> <api token> [name:tag]" >&2
  exit 2
fi
REGISTRY="$1"
TOKEN="$2"
IMAGE="${3:-busybox:latest}"
BUSYBOX="${KILN_BUSYBOX:-/bin/busybox}"

if ! "$BUSYBOX" --list >/dev/null 2>&1; then
  echo "seed-base-image: $BUSYBOX is not a busybox binary (apt-get install busybox-static)" >&2
  exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "seed-base-image: $BUSYBOX is dynamically linked; install busybox-static" >&2
  exit 1
fi

WORK="$(mktemp -d /tmp/kiln-seed-XXXXXX)"
BUILDAH=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
cleanup() {
  "${BUILDAH[@]}" rm -a >/dev/null 2>&1 || true
  "${BUILDAH[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The root filesystem: busybox and one symlink per applet, plus the usual empty directories.
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{bin,etc,tmp,root,proc,sys,dev,var,usr}
chmod 1777 "$ROOTFS/tmp"
install -m 0755 "$BUSYBOX" "$ROOTFS/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$ROOTFS/bin/$applet"
done
ln -s ../bin "$ROOTFS/usr/bin"
ln -s bin "$ROOTFS/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$ROOTFS/etc/group"

CTR="$("${BUILDAH[@]}" from scratch)"
"${BUILDAH[@]}" copy --quiet "$CTR" "$ROOTFS/" / >/dev/null
"${BUILDAH[@]}" config \
  --env PATH=/bin:/sbin:/usr/bin \
  --cmd '["sh"]' \
  --os linux --arch amd64 \
  --label org.opencontainers.image.title=busybox \
  --label org.opencontainers.image.description="busybox from Debian busybox-static, seeded by Kiln" \
  "$CTR"
"${BUILDAH[@]}" commit --quiet --format oci --rm "$CTR" "localhost/kiln-seed:latest" >/dev/null
"${BUILDAH[@]}" push --quiet --tls-verify=false --creds "kiln:$TOKEN" \
  "localhost/kiln-seed:latest" "docker://$REGISTRY/library/$IMAGE"
echo "seed-base-image: pushed $REGISTRY/library/$IMAGE"
