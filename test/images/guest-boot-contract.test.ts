import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  CMDLINE_KEYS,
  DISK_SERIALS,
  QEMU_GUEST_REGISTRY,
  VSOCK_GUEST_EGRESS_PROXY,
  VSOCK_GUEST_REGISTRY,
} from '../../common/protocol/guest-boot.js';

const execFileAsync = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const initramfsInit = path.join(repo, 'images/initramfs/init');
const rootfsInit = path.join(repo, 'images/rootfs/kiln-init');

/** Values of `NAME=value` shell assignments at the start of a line. */
function assignments(script: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of script.matchAll(/^([A-Z_]+)=([^\s$"'`]+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

describe('guest init scripts follow common/protocol/guest-boot.ts', () => {
  it('finds the root disk by the contract serial', async () => {
    const vars = assignments(await readFile(initramfsInit, 'utf8'));
    expect(vars.get('ROOT_SERIAL')).toBe(DISK_SERIALS.root);
  });

  it('uses the contract scratch serial, cmdline keys and guest addresses', async () => {
    const script = await readFile(rootfsInit, 'utf8');
    const vars = assignments(script);
    expect(vars.get('SCRATCH_SERIAL')).toBe(DISK_SERIALS.scratch);
    expect(vars.get('CACHE_SERIAL')).toBe(DISK_SERIALS.cache);
    expect(vars.get('KEY_NET')).toBe(CMDLINE_KEYS.net);
    expect(vars.get('KEY_REGISTRY_VSOCK')).toBe(CMDLINE_KEYS.registryVsock);
    expect(vars.get('VSOCK_REGISTRY_PORT')).toBe(String(VSOCK_GUEST_REGISTRY.port));
    expect(vars.get('KEY_EGRESS_VSOCK')).toBe(CMDLINE_KEYS.egressVsock);
    expect(vars.get('VSOCK_EGRESS_PROXY_PORT')).toBe(String(VSOCK_GUEST_EGRESS_PROXY.port));
    expect(VSOCK_GUEST_EGRESS_PROXY.host).toBe('127.0.0.1');
    expect(script).toContain('bind=127.0.0.1');
    expect(VSOCK_GUEST_REGISTRY.host).toBe('127.0.0.1');
    // QEMU user networking: the guest is 10.0.2.15/24, so the registry forward is on-link.
    expect(vars.get('QEMU_GUEST_IP')).toBe('10.0.2.15/24');
    expect(QEMU_GUEST_REGISTRY.host.startsWith('10.0.2.')).toBe(true);
  });

  it('mentions no disk serial or cmdline key outside the contract', async () => {
    const text = `${await readFile(initramfsInit, 'utf8')}\n${await readFile(rootfsInit, 'utf8')}`;
    const serials = new Set(Object.values(DISK_SERIALS) as string[]);
    for (const m of text.matchAll(/\bkiln-(?:root|source|config|scratch|[a-z]+(?==))\b/g)) {
      expect(serials.has(m[0])).toBe(true);
    }
    const keys = new Set(Object.values(CMDLINE_KEYS) as string[]);
    for (const m of text.matchAll(/\bkiln\.[a-z_]+/g)) {
      expect(keys.has(m[0]), m[0]).toBe(true);
    }
  });

  it('are valid POSIX shell (busybox sh and dash parse them)', async () => {
    await execFileAsync('busybox', ['sh', '-n', initramfsInit]);
    await execFileAsync('dash', ['-n', rootfsInit]);
  });

  it('load the virtio drivers both VMMs need from the initramfs', async () => {
    const modules = (await readFile(path.join(repo, 'images/kernel/modules.txt'), 'utf8'))
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l !== '');
    expect(modules).toEqual(
      expect.arrayContaining([
        'virtio_mmio',
        'virtio_pci',
        'virtio_blk',
        'virtio_console',
        'virtio_net',
        'overlay',
        'vmw_vsock_virtio_transport',
      ]),
    );
  });
});
