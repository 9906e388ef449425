#!/usr/bin/env bash
# Runs the BuildKit end-to-end suites (test/e2e/buildkit.e2e.test.ts: the shared build cases
# under rootless BuildKit) against a guest image built with BuildKit's binaries.
#
#   KILN_BUILDKIT_DIR=<dir with buildctl and buildkitd> npm run test:buildkit [vitest args]
#
# Fails loudly, never skips, when KILN_BUILDKIT_DIR is unset or lacks a binary. The image is
# built (or found in the cache by hash) by the suite's globalSetup (scripts/build-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "test-buildkit: $*" >&2
  exit 1
}
dir="${KILN_BUILDKIT_DIR:-}"
[ -n "$dir" ] || die "KILN_BUILDKIT_DIR is not set: point it at a directory with BuildKit's buildctl and buildkitd (docs/buildkit.md)"
[ -d "$dir" ] || die "KILN_BUILDKIT_DIR=$dir is not a directory"
missing=()
for f in buildctl buildkitd; do
  [ -f "$dir/$f" ] && [ -x "$dir/$f" ] || missing+=("$f")
done
[ "${#missing[@]}" -eq 0 ] || die "KILN_BUILDKIT_DIR=$dir lacks ${missing[*]} (executable files)"

KILN_BUILDKIT_DIR="$(cd "$dir" && pwd)"
export KILN_BUILDKIT_DIR KILN_TEST_BUILDKIT=1
exec npx vitest run --project buildkit "$@"
