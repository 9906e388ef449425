import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { selectVmm } from '../../src/vm/select-vmm.js';
import { isVmError } from '../../src/vm/vm-error.js';

const logger = pino({ level: 'silent' });

describe('selectVmm (real probes on this host)', () => {
  let cacheDir: string;
  beforeEach(async () => {
    cacheDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-select-'));
  });
  afterEach(async () => {
    await rm(cacheDir, { recursive: true, force: true });
  });

  function vm(env: Record<string, string>) {
    const imageDir = loadConfig(process.env).vm.imageDir;
    return loadConfig({ KILN_CACHE_DIR: cacheDir, KILN_IMAGE_DIR: imageDir, ...env }).vm;
  }

  it('uses QEMU when asked, with the acceleration its probe chose', async () => {
    const { vmm, reason } = await selectVmm({ vm: vm({ KILN_VMM: 'qemu' }), logger });
    expect(vmm.name).toBe('qemu');
    expect(['kvm', 'tcg']).toContain(vmm.accel);
    expect(vmm.guestRegistryAddress).toBe('10.0.2.100:5000');
    expect(reason).toMatch(/^configured: qemu: QEMU with (KVM|TCG)/);
  }, 60_000);

  it('fails VMM_UNAVAILABLE when an explicitly chosen Cloud Hypervisor binary does not exist', async () => {
    const err: unknown = await selectVmm({
      vm: vm({
        KILN_VMM: 'cloud-hypervisor',
        KILN_CLOUD_HYPERVISOR_BINARY: path.join(cacheDir, 'no-such-cloud-hypervisor'),
      }),
      logger,
    }).catch((e: unknown) => e);
    expect(isVmError(err, 'VMM_UNAVAILABLE')).toBe(true);
  });

  it('falls back from an unusable Cloud Hypervisor to QEMU under auto', async () => {
    const { vmm, reason } = await selectVmm({
      vm: vm({
        KILN_VMM: 'auto',
        KILN_CLOUD_HYPERVISOR_BINARY: path.join(cacheDir, 'no-such-cloud-hypervisor'),
      }),
      logger,
    });
    expect(vmm.name).toBe('qemu');
    expect(reason).toMatch(/^auto: QEMU with/);
  }, 60_000);

  it('uses TCG without probing when there is no guest image to probe with', async () => {
    const { vmm, reason } = await selectVmm({
      vm: loadConfig({
        KILN_VMM: 'qemu',
        KILN_CACHE_DIR: cacheDir,
        KILN_IMAGE_DIR: path.join(cacheDir, 'no-image'),
      }).vm,
      logger,
    });
    expect(vmm.accel).toBe('tcg');
    expect(reason).toContain('no guest image');
  });

  it('fails VMM_UNAVAILABLE when the QEMU binary cannot run', async () => {
    const err: unknown = await selectVmm({
      vm: vm({ KILN_VMM: 'qemu', KILN_QEMU_BINARY: path.join(cacheDir, 'no-such-qemu') }),
      logger,
    }).catch((e: unknown) => e);
    expect(isVmError(err, 'VMM_UNAVAILABLE')).toBe(true);
  });
});
