#!/usr/bin/env bash
# Dev helper: boots the current builder image once under QEMU microvm and talks to its agent.
#
#   bash scripts/image-smoke.sh            # boot, wait for hello, cancel; prints boot-to-agent
#   bash scripts/image-smoke.sh --build    # also run a real Buildah build: a throwaway
#                                          # docker-registry on a free loopback port (seeded
#                                          # with busybox where the guest mirrors docker.io:
#                                          # mirror/docker.io/library/busybox), push, check with skopeo
#
# Prints one JSON summary line last ({"helloMs":…,"exitMs":…,…}), used by
# bench/guest-image.bench.ts. Environment: KILN_CACHE_DIR / KILN_IMAGE_DIR (image location),
# KILN_SMOKE_ACCEL (tcg|kvm, default tcg), KILN_SMOKE_TIMEOUT (seconds, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

mode=hello
[ "${1:-}" = "--build" ] && mode=build
cache="${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}"
image="${KILN_IMAGE_DIR:-$cache/images/current}"
accel="${KILN_SMOKE_ACCEL:-tcg}"
timeout_s="${KILN_SMOKE_TIMEOUT:-300}"
for f in vmlinuz initramfs.img rootfs.img; do
  [ -f "$image/$f" ] || { echo "image-smoke: no $image/$f (run scripts/build-image.sh)" >&2; exit 1; }
done

work="$(mktemp -d /tmp/kiln-smoke.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

disks=(-drive "id=root,file=$image/rootfs.img,format=raw,if=none,readonly=on"
  -device virtio-blk-device,drive=root,serial=kiln-root)
netdev=()
registry_port=""
if [ "$mode" = build ]; then
  # --- a throwaway registry (Debian docker-registry) on a free loopback port
  registry_port="$(free_port)"
  mkdir -p "$work/registry"
  cat >"$work/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$registry_port }
YAML
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$registry_port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

  # --- seed busybox under the mirror path the guest maps docker.io to (from Debian's busybox-static) with the host's buildah
  storage=(--root "$work/buildah" --runroot "$work/buildah-run" --storage-driver vfs)
  ctr="$(buildah "${storage[@]}" from scratch)"
  mnt="$(buildah "${storage[@]}" mount "$ctr")"
  mkdir -p "$mnt/bin" "$mnt/tmp"
  cp /bin/busybox "$mnt/bin/busybox"
  for a in sh cat echo ls mkdir; do ln -s busybox "$mnt/bin/$a"; done
  buildah "${storage[@]}" config --cmd /bin/sh "$ctr"
  buildah "${storage[@]}" commit -q "$ctr" "localhost:$registry_port/mirror/docker.io/library/busybox:latest" >/dev/null
  buildah "${storage[@]}" push -q --tls-verify=false "localhost:$registry_port/mirror/docker.io/library/busybox:latest"

  # --- source archive and config volume
  mkdir -p "$work/src/app"
  printf 'hello from kiln\n' >"$work/src/app/hello.txt"
  printf '{"lockfileVersion":3}\n' >"$work/src/app/package-lock.json"
  cat >"$work/src/app/Dockerfile" <<'DOCKERFILE'
FROM busybox
COPY hello.txt /hello.txt
RUN echo "built in the guest" > /built.txt && cat /hello.txt
DOCKERFILE
  tar -C "$work/src" -czf "$work/source.tar.gz" app
  size="$(stat -c %s "$work/source.tar.gz")"
  sha="$(sha256sum "$work/source.tar.gz" | cut -d' ' -f1)"
  cp "$work/source.tar.gz" "$work/source.img"
  truncate -s "$(((size + 511) / 512 * 512))" "$work/source.img"
  mkdir -p "$work/config"
  cat >"$work/config/build.json" <<JSON
{"version":1,"buildId":"b_smoke","tenant":"smoke","source":{"sizeBytes":$size,"sha256":"$sha",
"compression":"gzip","maxUnpackedBytes":104857600,"maxEntries":10000,"maxPathBytes":4096},
"contextDir":"app","dockerfilePath":"Dockerfile","dockerfile":null,"buildArgs":{},"secretIds":[],
"registry":{"host":"10.0.2.100:5000","insecure":true,"repository":"smoke/app","tags":["b_smoke","latest"],
"cacheRepository":null,"mirror":{"namespace":"mirror","upstreams":["docker.io"]}},"engine":"buildah",
"networkMode":"isolated","egressProxy":null,"resources":{"memoryMb":1024,"cpus":1},"cache":null}
JSON
  tar -C "$work/config" -cf "$work/config.tar" build.json
  truncate -s 4G "$work/scratch.img"
  disks+=(-drive "id=source,file=$work/source.img,format=raw,if=none,readonly=on"
    -device virtio-blk-device,drive=source,serial=kiln-source
    -drive "id=config,file=$work/config.tar,format=raw,if=none,readonly=on"
    -device virtio-blk-device,drive=config,serial=kiln-config
    -drive "id=scratch,file=$work/scratch.img,format=raw,if=none,readonly=off"
    -device virtio-blk-device,drive=scratch,serial=kiln-scratch)
  netdev=(-netdev "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:socat - TCP:127.0.0.1:$registry_port"
    -device virtio-net-device,netdev=net0)
fi

# --- host side of the agent channel: listens first, answers hello, prints what the agent says
cat >"$work/host.mjs" <<'NODE'
import net from 'node:net';
import { writeFileSync } from 'node:fs';
const [sock, mode, out] = process.argv.slice(2);
const t0 = Number(process.env.T0_MS);
const summary = { mode };
const srv = net.createServer((s) => {
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const m = JSON.parse(line);
      const at = Date.now() - t0;
      if (m.type === 'log') process.stdout.write(m.data.replace(/^/gm, '  | '));
      else console.log(`[${at} ms] ${line.slice(0, 400)}`);
      if (m.type === 'hello') {
        summary.helloMs = at;
        summary.engines = m.engines;
        s.write(JSON.stringify(mode === 'build'
          ? { type: 'start', registryToken: 'smoke-token', secrets: {} }
          : { type: 'cancel', reason: 'smoke test' }) + '\n');
      }
      if (m.type === 'phase') summary[`phase_${m.phase}_ms`] = at;
      if (m.type === 'result') {
        summary.resultMs = at;
        summary.result = m;
        writeFileSync(out, JSON.stringify(summary));
      }
    }
  });
});
srv.listen(sock);
NODE
t0_ms="$(date +%s%3N)"
T0_MS="$t0_ms" node "$work/host.mjs" "$work/agent.sock" "$mode" "$work/summary.json" &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/agent.sock" ] && break; sleep 0.05; done

# tsc_early_khz: under TCG microvm has no PIT/HPET to calibrate the TSC against and the
# kernel waits forever for timer ticks; a stated frequency lets it boot.
cmdline="console=ttyS0 panic=-1 kiln.channel=serial:kiln.agent"
if [ "$accel" = tcg ]; then
  # Under TCG the guest's RDTSC reads the host TSC: state the host's rate.
  tsc_khz="$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)"
  cmdline="$cmdline tsc_early_khz=${tsc_khz:-2000000}"
fi
[ "$mode" = build ] && cmdline="$cmdline kiln.net=user kiln.registry=10.0.2.100:5000"
set +e
timeout "$timeout_s" qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on -accel "$accel" \
  -m 1024 -smp 1 -nodefaults -no-user-config -nographic -no-reboot \
  -kernel "$image/vmlinuz" -initrd "$image/initramfs.img" -append "$cmdline" \
  -serial "file:$work/console.log" "${disks[@]}" "${netdev[@]}" \
  -chardev "socket,id=agent,path=$work/agent.sock" -device virtio-serial-device \
  -device virtserialport,chardev=agent,name=kiln.agent \
  -device virtio-rng-device
qemu_rc=$?
set -e
exit_ms=$(($(date +%s%3N) - t0_ms))
echo "--- console (kiln lines)"
grep -E 'kiln|Power|panic|Kernel panic' "$work/console.log" | tail -n 20 || true

ok=true
[ "$qemu_rc" -eq 0 ] || { echo "image-smoke: qemu exited with $qemu_rc"; ok=false; }
[ -f "$work/summary.json" ] || { echo "image-smoke: the agent sent no result"; ok=false; }
pulled=""
if [ "$mode" = build ] && [ "$ok" = true ]; then
  if node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1])).result.ok?0:1)' "$work/summary.json"; then
    skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$registry_port/smoke/app:latest" "dir:$work/pulled"
    pulled="$(ls "$work/pulled" | wc -l)"
    # The RUN step's output must be in one of the layers.
    found=no
    for blob in "$work/pulled"/*; do
      if tar -xzOf "$blob" --wildcards '*built.txt' 2>/dev/null | grep -q 'built in the guest'; then found=yes; fi
    done
    echo "--- pulled smoke/app:latest back with skopeo ($pulled files; built.txt in a layer: $found)"
    [ "$found" = yes ] || ok=false
  else
    ok=false
  fi
fi
node -e '
  const fs = require("fs");
  const s = fs.existsSync(process.argv[1]) ? JSON.parse(fs.readFileSync(process.argv[1])) : {};
  delete s.result?.provenance?.lockfiles;
  s.exitMs = Number(process.argv[2]); s.qemuExit = Number(process.argv[3]); s.accel = process.argv[4];
  s.ok = process.argv[5] === "true";
  console.log(JSON.stringify(s));
' "$work/summary.json" "$exit_ms" "$qemu_rc" "$accel" "$ok"
[ "$ok" = true ]
