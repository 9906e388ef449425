import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { QemuAccel } from './qemu-argv.js';
import { parseJsonObject } from '../parse-json-object.js';
import { PROBE_CMDLINE, probeCacheFile, probeReachedInit, writeProbeCache } from '../probe-boot.js';

const execFileAsync = promisify(execFile);

/** The probe's verdict, as cached on disk. */
export interface QemuAccelProbeResult {
  accel: QemuAccel;
  /** Why this acceleration was chosen (shown in the start-up log). */
  reason: string;
  qemuVersion: string;
  /** Whether this came from the cache rather than a fresh probe boot. */
  cached: boolean;
}

/**
 * Decides whether QEMU can run guests under KVM on this host (docs/contracts.md#vmm-drivers):
 * `/dev/kvm` existing is not enough — on some hosts `-accel kvm` aborts with an ordinary guest — so
 * the probe boots the builder kernel under KVM and waits for it to start init. Success → "kvm",
 * anything else → "tcg". The verdict is cached in `<cacheDir>/probes/`, keyed by the QEMU version
 * and the kernel's sha256, so only the first start after an upgrade pays for a boot.
 */
export async function probeQemuAccel(options: {
  binary: string;
  kernelPath: string;
  initramfsPath: string;
  cacheDir: string;
  logger: Logger;
  /** Seconds the probe boot may take before KVM is declared unusable (default 20). */
  timeoutSeconds?: number;
}): Promise<QemuAccelProbeResult> {
  const qemuVersion = await readQemuVersion(options.binary);
  const cacheFile = await probeCacheFile({
    cacheDir: options.cacheDir,
    vmm: 'qemu-accel',
    version: qemuVersion,
    kernelPath: options.kernelPath,
  });
  const cached = await readCache(cacheFile);
  if (cached) {
    options.logger.info({ ...cached, cacheFile }, 'qemu acceleration probe (cached)');
    return { ...cached, qemuVersion, cached: true };
  }

  let verdict: { accel: QemuAccel; reason: string };
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    verdict = await bootUnderKvm(options);
  } catch {
    verdict = { accel: 'tcg', reason: '/dev/kvm is absent or not accessible' };
  }
  await writeProbeCache(cacheFile, { ...verdict, qemuVersion });
  options.logger.info({ ...verdict, qemuVersion, cacheFile }, 'qemu acceleration probe');
  return { ...verdict, qemuVersion, cached: false };
}

async function bootUnderKvm(options: {
  binary: string;
  kernelPath: string;
  initramfsPath: string;
  timeoutSeconds?: number;
}): Promise<{ accel: QemuAccel; reason: string }> {
  const args = [
    '-M',
    'microvm',
    '-accel',
    'kvm',
    '-cpu',
    'host',
    '-m',
    '256M',
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-kernel',
    options.kernelPath,
    '-initrd',
    options.initramfsPath,
    '-append',
    PROBE_CMDLINE,
    '-serial',
    'stdio',
  ];
  const child = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const timeoutMs = (options.timeoutSeconds ?? 20) * 1000;
  return new Promise((resolve) => {
    let done = false;
    const finish = (verdict: { accel: QemuAccel; reason: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(verdict);
    };
    const timer = setTimeout(() => {
      finish({
        accel: 'tcg',
        reason: `KVM probe boot did not reach init in ${timeoutMs / 1000} s`,
      });
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-16_384);
      if (probeReachedInit(output)) {
        finish({ accel: 'kvm', reason: 'a KVM probe boot reached init' });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (err) => {
      finish({ accel: 'tcg', reason: `KVM probe could not start qemu: ${err.message}` });
    });
    child.once('exit', (code, signal) => {
      const last = output.trim().split('\n').slice(-1)[0] ?? '';
      finish({
        accel: 'tcg',
        reason: `KVM probe boot ended early (code ${String(code)}, signal ${String(signal)}): ${last}`,
      });
    });
  });
}

/** First line of `qemu-system-x86_64 --version`; throws VMM-unavailable style errors upward. */
export async function readQemuVersion(binary: string): Promise<string> {
  const { stdout } = await execFileAsync(binary, ['--version'], { timeout: 10_000 });
  return stdout.split('\n')[0]?.trim() ?? 'unknown';
}

async function readCache(file: string): Promise<{ accel: QemuAccel; reason: string } | null> {
  try {
    const value = parseJsonObject(await readFile(file, 'utf8'));
    if (value === null) return null;
    if ((value.accel === 'kvm' || value.accel === 'tcg') && typeof value.reason === 'string') {
      return { accel: value.accel, reason: value.reason };
    }
    return null;
  } catch {
    return null;
  }
}
