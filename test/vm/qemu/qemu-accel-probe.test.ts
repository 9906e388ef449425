import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { resolveGuestImage } from '../../../src/vm/guest-image.js';
import { probeQemuAccel } from '../../../src/vm/qemu/qemu-accel-probe.js';

const logger = pino({ level: 'silent' });

describe('probeQemuAccel (real QEMU, the real guest kernel)', () => {
  let cacheDir: string;
  beforeEach(async () => {
    cacheDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-probe-'));
  });
  afterEach(async () => {
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('decides kvm or tcg once, caches the verdict keyed by QEMU version and kernel, and reuses it', async () => {
    const image = await resolveGuestImage(loadConfig(process.env).vm.imageDir);
    const options = {
      binary: 'qemu-system-x86_64',
      kernelPath: image.kernelPath,
      initramfsPath: image.initramfsPath,
      cacheDir,
      logger,
    };

    const first = await probeQemuAccel(options);
    expect(['kvm', 'tcg']).toContain(first.accel);
    expect(first.cached).toBe(false);
    expect(first.qemuVersion).toMatch(/^QEMU emulator version \d+\.\d+/);
    expect(first.reason).not.toBe('');
    const files = await readdir(path.join(cacheDir, 'probes'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^qemu-accel-[0-9a-f]{32}\.json$/);

    const second = await probeQemuAccel(options);
    expect(second).toEqual({ ...first, cached: true });
  }, 60_000);
});
