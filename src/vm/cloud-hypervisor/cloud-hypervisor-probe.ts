import { execFile } from 'node:child_process';
import { constants, watch } from 'node:fs';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { isGuestRebootEvent } from './cloud-hypervisor-event-parser.js';
import { CloudHypervisorProcess } from './cloud-hypervisor-process.js';
import { RUN_DIR_FILES } from './cloud-hypervisor-vm-config.js';
import { GUEST_IMAGE_FILES } from '../guest-image.js';
import { parseJsonObject } from '../parse-json-object.js';
import { PROBE_CMDLINE, probeCacheFile, probeReachedInit, writeProbeCache } from '../probe-boot.js';

export type CloudHypervisorProbeResult =
  { usable: true; binary: string } | { usable: false; reason: string };

/** The `vm.create` body of the probe boot: kernel + initramfs, serial to a file, no devices. */
export interface CloudHypervisorProbeVmConfig {
  payload: { kernel: string; initramfs: string; cmdline: string };
  cpus: { boot_vcpus: number; max_vcpus: number };
  memory: { size: number };
  rng: { src: string };
  serial: { mode: 'File'; file: string };
  console: { mode: 'Off' };
}

const DEFAULT_BINARY = 'cloud-hypervisor';
const PROBE_TIMEOUT_MS = 20_000;

export function buildProbeVmConfig(paths: {
  kernel: string;
  initramfs: string;
  serialLog: string;
}): CloudHypervisorProbeVmConfig {
  return {
    payload: {
      kernel: paths.kernel,
      initramfs: paths.initramfs,
      cmdline: PROBE_CMDLINE,
    },
    cpus: { boot_vcpus: 1, max_vcpus: 1 },
    memory: { size: 256 * 1024 * 1024 },
    rng: { src: '/dev/urandom' },
    serial: { mode: 'File', file: paths.serialLog },
    console: { mode: 'Off' },
  };
}

async function isExecutable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** Resolves a binary name through PATH, or checks an explicit path. */
async function findBinary(binary: string): Promise<string | undefined> {
  if (binary.includes('/')) return (await isExecutable(binary)) ? path.resolve(binary) : undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, binary);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function readVersion(binary: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['--version'], { timeout: 10_000 }, (err, stdout) => {
      if (err !== null) reject(new Error(`${binary} --version: ${err.message}`, { cause: err }));
      else resolve(stdout.trim());
    });
  });
}

/**
 * Decides whether Cloud Hypervisor can run builder VMs on this host
 * (docs/contracts.md#vmm-drivers): the binary exists (option or PATH), `/dev/kvm` is readable and
 * writable, and a real probe boot of the guest kernel reaches init. The boot verdict is cached in
 * `<cacheDir>/probes/`, keyed by the binary's `--version` and the kernel's sha256; the cheap checks
 * run every time.
 */
export async function probeCloudHypervisor(options: {
  binary?: string | undefined;
  imageDir: string;
  cacheDir: string;
  logger: Logger;
}): Promise<CloudHypervisorProbeResult> {
  const logger = options.logger.child({ probe: 'cloud-hypervisor' });
  const name = options.binary ?? DEFAULT_BINARY;
  const binary = await findBinary(name);
  if (binary === undefined) {
    const reason =
      options.binary === undefined
        ? 'cloud-hypervisor not installed'
        : `cloud-hypervisor not installed (no executable ${options.binary})`;
    logger.info({ reason }, 'cloud-hypervisor probe');
    return { usable: false, reason };
  }
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { usable: false, reason: '/dev/kvm is absent or not accessible' };
  }
  const kernel = path.join(options.imageDir, GUEST_IMAGE_FILES.kernel);
  const initramfs = path.join(options.imageDir, GUEST_IMAGE_FILES.initramfs);
  let version: string;
  let cacheFile: string;
  try {
    version = await readVersion(binary);
    cacheFile = await probeCacheFile({
      cacheDir: options.cacheDir,
      vmm: 'cloud-hypervisor',
      version,
      kernelPath: kernel,
    });
    await access(initramfs, constants.R_OK);
  } catch (err) {
    return { usable: false, reason: `cannot probe cloud-hypervisor: ${(err as Error).message}` };
  }
  const cached = await readCache(cacheFile);
  if (cached !== undefined) {
    logger.info({ ...cached, version, cacheFile }, 'cloud-hypervisor probe (cached)');
    return cached.booted ? { usable: true, binary } : { usable: false, reason: cached.reason };
  }
  const verdict = await probeBoot({ binary, kernel, initramfs, logger });
  if (verdict.cacheable) {
    // Only what the guest did is cached; a VMM that failed to start is retried next time.
    await writeProbeCache(cacheFile, { booted: verdict.booted, reason: verdict.reason, version });
  }
  logger.info({ ...verdict, version, cacheFile }, 'cloud-hypervisor probe');
  return verdict.booted ? { usable: true, binary } : { usable: false, reason: verdict.reason };
}

async function readCache(file: string): Promise<{ booted: boolean; reason: string } | undefined> {
  try {
    const value = parseJsonObject(await readFile(file, 'utf8'));
    if (value === null) return undefined;
    const { booted, reason } = value;
    if (typeof booted !== 'boolean' || typeof reason !== 'string') return undefined;
    return { booted, reason };
  } catch {
    return undefined;
  }
}

async function probeBoot(options: {
  binary: string;
  kernel: string;
  initramfs: string;
  logger: Logger;
}): Promise<{ booted: boolean; reason: string; cacheable: boolean }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-ch-probe-'));
  const serialLog = path.join(dir, 'serial.log');
  await writeFile(serialLog, '');
  let proc: CloudHypervisorProcess | undefined;
  let settle: ((verdict: { booted: boolean; reason: string }) => void) | undefined;
  const verdict = new Promise<{ booted: boolean; reason: string }>((resolve) => {
    settle = resolve;
  });
  const watcher = watch(serialLog, () => {
    void readFile(serialLog, 'utf8').then((text) => {
      if (probeReachedInit(text)) {
        settle?.({ booted: true, reason: 'probe boot reached init under KVM' });
      }
    });
  });
  watcher.on('error', () => undefined);
  const timer = setTimeout(() => {
    settle?.({
      booted: false,
      reason: `probe boot did not reach init within ${PROBE_TIMEOUT_MS} ms`,
    });
  }, PROBE_TIMEOUT_MS);
  try {
    proc = await CloudHypervisorProcess.start({
      binary: options.binary,
      apiSocketPath: path.join(dir, RUN_DIR_FILES.apiSocket),
      logger: options.logger,
      startTimeoutMs: 10_000,
      onEvent: (event) => {
        if (isGuestRebootEvent(event)) {
          settle?.({ booted: false, reason: 'probe guest reset before reaching init' });
        }
      },
    });
    void proc.exited.then((exit) => {
      settle?.({
        booted: false,
        reason: `cloud-hypervisor exited during the probe boot (code ${exit.code}, signal ${exit.signal})`,
      });
    });
    await proc.api.call(
      'PUT',
      'vm.create',
      buildProbeVmConfig({ kernel: options.kernel, initramfs: options.initramfs, serialLog }),
    );
    await proc.api.bootVm();
    return { ...(await verdict), cacheable: true };
  } catch (err) {
    return {
      booted: false,
      reason: `probe boot failed: ${(err as Error).message}`,
      cacheable: false,
    };
  } finally {
    clearTimeout(timer);
    watcher.close();
    await proc?.kill();
    await rm(dir, { recursive: true, force: true });
  }
}
