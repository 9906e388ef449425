import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { DISK_SERIALS } from '../../../common/protocol/guest-boot.js';
import { buildProbeVmConfig } from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-probe.js';
import {
  buildCloudHypervisorVmConfig,
  type CloudHypervisorVmConfig,
} from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-vm-config.js';
import type { VmSpec } from '../../../src/vm/vmm.js';

/** Kiln's own schema of the `vm.create` body (docs/cloud-hypervisor-api.md). */
const SCHEMA_URL = new URL(
  '../../../src/vm/cloud-hypervisor/vm-create-schema.json',
  import.meta.url,
);

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A copy of `schema` with every `additionalProperties: false` removed. */
function opened(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(opened);
  if (!isObject(schema)) return schema;
  const out: JsonObject = {};
  for (const [key, child] of Object.entries(schema)) {
    if (key === 'additionalProperties' && child === false) continue;
    out[key] = opened(child);
  }
  return out;
}

/**
 * Compiles the schema with Ajv in strict mode (unknown keywords, formats or loose types in the
 * schema itself are errors). `closed` is the schema as written: no undeclared keys anywhere.
 * The open variant checks only names, types, required keys and enums, so a test can show a
 * payload fails for that reason and not merely for carrying an unknown key.
 */
function compileSchema(closed: boolean): ValidateFunction {
  const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as JsonObject;
  const ajv = new Ajv({ strict: true, allErrors: true });
  return ajv.compile(closed ? schema : (opened(schema) as JsonObject));
}

/** Every device id in a payload (Cloud Hypervisor refuses duplicates). */
function deviceIds(payload: CloudHypervisorVmConfig): string[] {
  return [...payload.disks.map((d) => d.id), payload.vsock.id];
}

function spec(network: VmSpec['network']): VmSpec {
  return {
    id: 'b_schema0000000000000000',
    runDir: '/run/kiln/vms/b_schema',
    kernelPath: '/var/cache/kiln/image/vmlinuz',
    initramfsPath: '/var/cache/kiln/image/initramfs.img',
    cmdline: 'quiet',
    memoryMb: 2048,
    cpus: 2,
    disks: [
      { path: '/var/cache/kiln/image/rootfs.img', readOnly: true, serial: DISK_SERIALS.root },
      { path: '/var/lib/kiln/uploads/b_schema.tar', readOnly: true, serial: DISK_SERIALS.source },
      { path: '/run/kiln/vms/b_schema/config.img', readOnly: true, serial: DISK_SERIALS.config },
      { path: '/run/kiln/vms/b_schema/scratch.img', readOnly: false, serial: DISK_SERIALS.scratch },
    ],
    network,
    consoleLogPath: '/var/lib/kiln/builds/b_schema/console.log',
  };
}

const registryTarget = { host: '127.0.0.1', port: 5000 };
const paths = { vsockSocket: '/run/kiln/vms/b_schema/vsock.sock' };

function egressPayload(): CloudHypervisorVmConfig {
  return buildCloudHypervisorVmConfig(
    spec({
      mode: 'egress',
      registryTarget,
      egressProxySocket: '/run/kiln/vms/b_schema/egress.sock',
    }),
    paths,
  );
}

describe('vm.create payload against the in-repo vm.create schema', () => {
  const open = compileSchema(false);
  const closed = compileSchema(true);

  it('is valid for an isolated build, with only declared keys', () => {
    const payload = buildCloudHypervisorVmConfig(spec({ mode: 'isolated', registryTarget }), paths);
    expect(open(payload), JSON.stringify(open.errors)).toBe(true);
    expect(closed(payload), JSON.stringify(closed.errors)).toBe(true);
    expect(payload).not.toHaveProperty('net');
  });

  it('is valid for an egress build, with only declared keys', () => {
    const payload = egressPayload();
    expect(open(payload), JSON.stringify(open.errors)).toBe(true);
    expect(closed(payload), JSON.stringify(closed.errors)).toBe(true);
    expect(payload).not.toHaveProperty('net');
  });

  it('has no place for a network device: a net member fails the schema', () => {
    const payload = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    payload.net = [{ tap: 'tap0', id: 'net0' }];
    expect(closed(payload)).toBe(false);
    expect(JSON.stringify(closed.errors)).toContain('net');
  });

  it('is valid for the probe boot', () => {
    const payload = buildProbeVmConfig({
      kernel: '/k/vmlinuz',
      initramfs: '/k/initramfs.img',
      serialLog: '/tmp/serial.log',
    });
    expect(open(payload), JSON.stringify(open.errors)).toBe(true);
    expect(closed(payload), JSON.stringify(closed.errors)).toBe(true);
  });

  it('rejects a misspelled field (the check can fail)', () => {
    const payload = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    const disks = payload.disks as JsonObject[];
    disks[0] = { ...disks[0], read_only: true };
    delete disks[0].readonly;
    expect(closed(payload)).toBe(false);
    expect(JSON.stringify(closed.errors)).toContain('read_only');

    const cpus = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    cpus.cpus = { boot_cpus: 2, max_vcpus: 2 };
    expect(open(cpus)).toBe(false);
  });

  it('rejects a wrong type or enum value', () => {
    const payload = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    payload.serial = { mode: 'file', file: '/x' };
    expect(open(payload)).toBe(false);
    const memory = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    memory.memory = { size: '2G' };
    expect(open(memory)).toBe(false);
  });

  it('rejects a key the API knows but Kiln must not send', () => {
    const payload = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    payload.console = { mode: 'Off', iommu: true };
    expect(open(payload), JSON.stringify(open.errors)).toBe(true);
    expect(closed(payload)).toBe(false);
    expect(JSON.stringify(closed.errors)).toContain('iommu');
  });

  it('is valid with a cache disk, and refuses backing_files or image_type on any disk', () => {
    const withCache = spec({ mode: 'isolated', registryTarget });
    withCache.disks.push({
      path: '/var/lib/kiln/caches/acme/main/forks/b_schema.img',
      readOnly: false,
      serial: DISK_SERIALS.cache,
    });
    const payload = buildCloudHypervisorVmConfig(withCache, paths);
    expect(closed(payload), JSON.stringify(closed.errors)).toBe(true);
    expect(payload.disks.at(-1)).toMatchObject({ serial: 'kiln-cache', readonly: false });
    for (const extra of [{ backing_files: true }, { image_type: 'Qcow2' }]) {
      const copy = JSON.parse(JSON.stringify(payload)) as JsonObject;
      const disks = copy.disks as JsonObject[];
      disks[disks.length - 1] = { ...disks[disks.length - 1], ...extra };
      expect(closed(copy)).toBe(false);
    }
  });

  it('rejects a missing required key, a relative path and an over-long disk serial', () => {
    const noCid = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    delete (noCid.vsock as JsonObject).cid;
    expect(open(noCid)).toBe(false);

    const relative = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    (relative.payload as JsonObject).kernel = 'vmlinuz';
    expect(open(relative)).toBe(false);

    const serial = JSON.parse(JSON.stringify(egressPayload())) as JsonObject;
    (serial.disks as JsonObject[])[0] = {
      ...(serial.disks as JsonObject[])[0],
      serial: 'x'.repeat(21),
    };
    expect(open(serial)).toBe(false);
  });

  it('gives every device a distinct id', () => {
    for (const payload of [
      buildCloudHypervisorVmConfig(spec({ mode: 'isolated', registryTarget }), paths),
      egressPayload(),
    ]) {
      const ids = deviceIds(payload);
      expect(new Set(ids).size).toBe(ids.length);
    }
  });
});

describe('buildCloudHypervisorVmConfig', () => {
  it('appends the vsock channel, registry tunnel and console keys to the spec cmdline', () => {
    const payload = buildCloudHypervisorVmConfig(spec({ mode: 'isolated', registryTarget }), paths);
    expect(payload.payload.cmdline).toBe(
      'quiet console=ttyS0 panic=-1 kiln.channel=vsock:1024 kiln.net=none kiln.registry_vsock=1025 kiln.registry=127.0.0.1:5000',
    );
  });

  it('maps memory to bytes, disks with readonly and serial, serial to the console log, console off', () => {
    const payload = buildCloudHypervisorVmConfig(spec({ mode: 'isolated', registryTarget }), paths);
    expect(payload.memory).toEqual({ size: 2048 * 1024 * 1024 });
    expect(payload.cpus).toEqual({ boot_vcpus: 2, max_vcpus: 2 });
    expect(payload.disks.map((d) => [d.serial, d.readonly])).toEqual([
      ['kiln-root', true],
      ['kiln-source', true],
      ['kiln-config', true],
      ['kiln-scratch', false],
    ]);
    expect(payload.serial).toEqual({
      mode: 'File',
      file: '/var/lib/kiln/builds/b_schema/console.log',
    });
    expect(payload.console).toEqual({ mode: 'Off' });
    expect(payload.vsock).toMatchObject({ cid: 3, socket: paths.vsockSocket });
  });

  it('gives an egress guest the proxy tunnel key and no network device', () => {
    const payload = egressPayload();
    expect(payload).not.toHaveProperty('net');
    expect(payload.payload.cmdline).toBe(
      'quiet console=ttyS0 panic=-1 kiln.channel=vsock:1024 kiln.net=none kiln.registry_vsock=1025 kiln.egress_vsock=1026 kiln.registry=127.0.0.1:5000',
    );
  });

  it('refuses a disk serial longer than virtio-blk allows', () => {
    const bad = spec({ mode: 'isolated', registryTarget });
    bad.disks = [{ path: '/x', readOnly: true, serial: 'a-serial-way-over-twenty-bytes' }];
    expect(() => buildCloudHypervisorVmConfig(bad, paths)).toThrow(/exceeds 20 bytes/);
  });
});
