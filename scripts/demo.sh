#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a running daemon and a finished demo build:
# installs what is missing (scripts/setup.sh), starts the daemon, seeds the shared busybox base
# image, builds examples/hello in a microVM while streaming its events, shows the pushed image,
# and leaves the daemon running in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."

export KILN_DATA_DIR="${KILN_DATA_DIR:-$PWD/.kiln}"
export KILN_HOST="${KILN_HOST:-127.0.0.1}"
export KILN_PORT="${KILN_PORT:-8083}"
base="http://${KILN_HOST}:${KILN_PORT}"

bash scripts/setup.sh

mkdir -p "$KILN_DATA_DIR"
log="$KILN_DATA_DIR/daemon.log"
echo "demo: starting the daemon on $base (log: $log)"
node dist/src/main.js >>"$log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' INT TERM
for _ in $(seq 1 100); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "demo: the daemon exited; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

operator_token="$(node bin/kiln.js token create --tenant operator --scope registry:admin --ttl 1h)"
bash scripts/seed-base-image.sh "${KILN_HOST}:${KILN_PORT}" "$operator_token"

token="$(node bin/kiln.js token create --tenant demo --scope builds:write,builds:read,registry:pull --ttl 1d)"
archive="$(mktemp /tmp/kiln-demo-XXXXXX.tar.gz)"
tar -C examples/hello -czf "$archive" .
echo "demo: POST /builds (examples/hello)"
response="$(curl -fsS -H "Authorization: Bearer $token" -F "source=@$archive" -F image_name=hello \
  -F 'build_args={"GREETING":"hello"}' "$base/builds")"
rm -f "$archive"
id="$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).id)' "$response")"
echo "demo: build $id accepted; following its events"
curl -fsSN -H "Authorization: Bearer $token" "$base/builds/$id/events?follow=true" |
  sed -n 's/^data: //p'
build="$(curl -fsS -H "Authorization: Bearer $token" "$base/builds/$id")"
status="$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).status)' "$build")"
echo "demo: build $id is $status"
echo "$build"
if [ "$status" = ready ]; then
  echo "demo: the image in Kiln's registry:"
  skopeo inspect --tls-verify=false --creds "demo:$token" \
    "docker://${KILN_HOST}:${KILN_PORT}/demo/hello:latest" | head -n 20
fi
echo
echo "demo: the daemon keeps running at $base (pid $daemon); Ctrl-C stops it."
echo "demo: a token for more builds: $token"
wait "$daemon"
