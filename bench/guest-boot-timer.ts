/**
 * One boot of the guest image with the daemon's QEMU driver (src/vm/qemu), for the benchmarks:
 * `floor` boots the image's kernel and initramfs into an init that powers off at once
 * (`rdinit=/bin/busybox -- poweroff -f`) and is timed to the VMM's exit; `agent` boots the whole
 * guest and is timed to the agent's `hello` on the host, then cancels, so the VM powers off.
 * Both use the same argv, command line (`quiet`, as the daemon's runner passes) and resources.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { DISK_SERIALS } from '../common/protocol/guest-boot.js';
import type { QemuVmm } from '../src/vm/qemu/qemu-vmm.js';
import type { VmSpec } from '../src/vm/vmm.js';

/** What the daemon's runner passes (src/vm/vm-build-runner.ts) and its default resources. */
export const BENCH_VM = { cmdline: 'quiet', memoryMb: 2048, cpus: 2 } as const;
/** The floor's init: busybox's poweroff applet, run as the initramfs's first process. */
export const FLOOR_INIT = 'rdinit=/bin/busybox -- poweroff -f';
const BOOT_TIMEOUT_MS = 120_000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => {
      clearTimeout(timer);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`${what}: no answer in ${BOOT_TIMEOUT_MS} ms`));
      }, BOOT_TIMEOUT_MS);
    }),
  ]);
}

/** Resolves at the first newline-terminated JSON line whose type is `hello`. */
function waitForHello(channel: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (data: Buffer): void => {
      buffered += data.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if ((JSON.parse(line) as { type?: unknown }).type === 'hello') {
          channel.off('data', onData);
          resolve();
          return;
        }
      }
    };
    channel.on('data', onData);
    channel.once('close', () => {
      reject(new Error('the agent channel closed before hello'));
    });
  });
}

/** Boots once; returns the seconds to the exit (floor) or to hello (agent) and the console. */
export async function bootOnce(
  vmm: QemuVmm,
  imageDir: string,
  kind: 'floor' | 'agent',
  round: number,
  /** More kernel command line words (experiments: `NODE_OPTIONS=…` reaches the guest's init). */
  cmdlineExtra = '',
): Promise<{ seconds: number; console: string }> {
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-vmboot-'));
  try {
    const spec: VmSpec = {
      id: `vmboot-${kind}-${round}`,
      runDir,
      kernelPath: path.join(imageDir, 'vmlinuz'),
      initramfsPath: path.join(imageDir, 'initramfs.img'),
      cmdline: [BENCH_VM.cmdline, cmdlineExtra, kind === 'floor' ? FLOOR_INIT : '']
        .filter((w) => w !== '')
        .join(' '),
      memoryMb: BENCH_VM.memoryMb,
      cpus: BENCH_VM.cpus,
      disks: [
        { path: path.join(imageDir, 'rootfs.img'), readOnly: true, serial: DISK_SERIALS.root },
      ],
      // Nothing listens there: the guest's registry forward is only dialled by a build.
      network: { mode: 'isolated', registryTarget: { host: '127.0.0.1', port: 9 } },
      consoleLogPath: path.join(runDir, 'console.log'),
    };
    const started = performance.now();
    const vm = await vmm.start(spec);
    let seconds: number;
    try {
      if (kind === 'floor') {
        const exit = await withTimeout(vm.exited, 'floor boot');
        seconds = (performance.now() - started) / 1000;
        if (exit.code !== 0) throw new Error(`floor VM exited with ${String(exit.code)}`);
      } else {
        const channel = await withTimeout(vm.channel(), 'agent channel');
        await withTimeout(waitForHello(channel), 'hello');
        seconds = (performance.now() - started) / 1000;
        channel.write(`${JSON.stringify({ type: 'cancel', reason: 'vm-boot benchmark' })}\n`);
        await withTimeout(vm.exited, 'agent VM power-off');
      }
    } finally {
      await vm.kill();
    }
    return { seconds, console: await readFile(spec.consoleLogPath, 'utf8') };
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
}
