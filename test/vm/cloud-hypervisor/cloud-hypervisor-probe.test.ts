import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { probeCloudHypervisor } from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-probe.js';
import { createCloudHypervisorStandIn } from '../../helpers/cloud-hypervisor-stand-in.js';

const logger = pino({ level: 'silent' });

describe('probeCloudHypervisor', () => {
  let dir: string;
  let imageDir: string;
  let cacheDir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-ch-probe-test-'));
    imageDir = path.join(dir, 'image');
    cacheDir = path.join(dir, 'cache');
    await mkdir(imageDir);
    await writeFile(path.join(imageDir, 'vmlinuz'), 'kernel bytes');
    await writeFile(path.join(imageDir, 'initramfs.img'), 'initramfs bytes');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('answers unusable with "cloud-hypervisor not installed" when the binary is absent', async () => {
    const result = await probeCloudHypervisor({
      binary: path.join(dir, 'no-such', 'cloud-hypervisor'),
      imageDir,
      cacheDir,
      logger,
    });
    expect(result.usable).toBe(false);
    if (result.usable) return;
    expect(result.reason).toMatch(/^cloud-hypervisor not installed/);
  });

  it('answers usable after a probe boot reaches init, and caches the verdict by version and kernel', async () => {
    const standIn = await createCloudHypervisorStandIn({ dir });
    const first = await probeCloudHypervisor({
      binary: standIn.binary,
      imageDir,
      cacheDir,
      logger,
    });
    expect(first).toEqual({ usable: true, binary: standIn.binary });
    const boots = (await standIn.records()).filter((r) => r.kind === 'argv').length;
    expect(boots).toBe(1);
    expect(await readdir(path.join(cacheDir, 'probes'))).toHaveLength(1);

    const second = await probeCloudHypervisor({
      binary: standIn.binary,
      imageDir,
      cacheDir,
      logger,
    });
    expect(second).toEqual({ usable: true, binary: standIn.binary });
    expect((await standIn.records()).filter((r) => r.kind === 'argv')).toHaveLength(1);

    // A different kernel is probed again.
    await writeFile(path.join(imageDir, 'vmlinuz'), 'another kernel');
    await probeCloudHypervisor({ binary: standIn.binary, imageDir, cacheDir, logger });
    expect((await standIn.records()).filter((r) => r.kind === 'argv')).toHaveLength(2);
  });

  it('answers unusable, without caching, when the VMM refuses to boot the probe guest', async () => {
    const standIn = await createCloudHypervisorStandIn({ dir, scenario: 'boot-fails' });
    const result = await probeCloudHypervisor({
      binary: standIn.binary,
      imageDir,
      cacheDir,
      logger,
    });
    expect(result.usable).toBe(false);
    if (result.usable) return;
    expect(result.reason).toContain('could not boot');
    expect(existsSync(path.join(cacheDir, 'probes'))).toBe(false);
  });
});
