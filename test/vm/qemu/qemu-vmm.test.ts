import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LineFramer } from '../../../common/protocol/line-framer.js';
import { parseAgentMessage } from '../../../common/protocol/parse-message.js';
import { loadConfig } from '../../../src/config/config.js';
import { createBuildJob } from '../../../src/vm/build-job-factory.js';
import { writeConfigVolume } from '../../../src/vm/config-volume.js';
import { resolveGuestImage } from '../../../src/vm/guest-image.js';
import { isRecordedProcessAlive, readProcessStartTicks } from '../../../src/vm/process-identity.js';
import { QemuVmm } from '../../../src/vm/qemu/qemu-vmm.js';
import { createScratchVolume } from '../../../src/vm/scratch-volume.js';
import type { VmHandle, VmSpec } from '../../../src/vm/vmm.js';
import { makeTestBuild, TEST_JOB_OPTIONS } from '../vm-test-build.js';

const logger = pino({ level: 'silent' });

describe('QemuVmm (real QEMU microvm, the real guest image)', () => {
  let runDir: string;
  let handle: VmHandle | undefined;

  beforeEach(async () => {
    runDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-qemu-'));
    handle = undefined;
  });
  afterEach(async () => {
    await handle?.kill();
    await rm(runDir, { recursive: true, force: true });
  });

  async function spec(overrides: Partial<VmSpec> = {}): Promise<VmSpec> {
    const image = await resolveGuestImage(loadConfig(process.env).vm.imageDir);
    const source = path.join(runDir, 'source.tar');
    await writeFile(source, Buffer.alloc(1024));
    const config = path.join(runDir, 'config.tar');
    await writeConfigVolume(
      config,
      createBuildJob(makeTestBuild({ source: { path: source, sizeBytes: 1024 } }), {
        ...TEST_JOB_OPTIONS,
        limits: { ...TEST_JOB_OPTIONS.limits, maxUnpackedBytes: 1e6 },
      }),
    );
    const scratch = path.join(runDir, 'scratch.img');
    await createScratchVolume(scratch, 1024 ** 3);
    return {
      id: 'b_qemutest',
      runDir,
      kernelPath: image.kernelPath,
      initramfsPath: image.initramfsPath,
      cmdline: 'quiet',
      memoryMb: 512,
      cpus: 1,
      disks: [
        { path: image.rootfsPath, readOnly: true, serial: 'kiln-root' },
        { path: source, readOnly: true, serial: 'kiln-source' },
        { path: config, readOnly: true, serial: 'kiln-config' },
        { path: scratch, readOnly: false, serial: 'kiln-scratch' },
      ],
      network: { mode: 'isolated', registryTarget: { host: '127.0.0.1', port: 9 } },
      consoleLogPath: path.join(runDir, 'console.log'),
      ...overrides,
    };
  }

  it('boots the guest, whose agent says hello over the virtio-serial channel; kill ends QEMU', async () => {
    const vmm = new QemuVmm({ accel: 'tcg', logger });
    handle = await vmm.start(await spec());
    expect(await readProcessStartTicks(handle.pid)).not.toBeNull();
    expect(handle.executable).toBe('qemu-system-x86_64');

    const channel = await handle.channel();
    // What the runner records for crash recovery identifies this very process.
    const startTicks = await readProcessStartTicks(handle.pid);
    expect(
      await isRecordedProcessAlive({
        vmId: 'b_qemutest',
        pid: handle.pid,
        startTicks: startTicks!,
        executable: handle.executable!,
      }),
    ).toBe(true);
    const framer = new LineFramer();
    const first = await new Promise<unknown>((resolve, reject) => {
      channel.on('data', (chunk: Buffer) => {
        const frame = framer.push(chunk)[0];
        if (frame?.kind === 'message') resolve(frame.value);
      });
      channel.once('close', () => {
        reject(new Error('channel closed before hello'));
      });
    });
    const parsed = parseAgentMessage(first);
    expect(parsed.ok && parsed.message).toMatchObject({ type: 'hello', protocol: 1 });

    await handle.kill();
    expect((await handle.exited).signal).toBe('SIGKILL');
    expect(await readProcessStartTicks(handle.pid)).toBeNull();
    expect(await readFile(path.join(runDir, 'console.log'), 'utf8')).not.toBe('');
  }, 120_000);

  it('reports a QEMU that cannot start the guest through exited, with its error in the console log', async () => {
    const vmm = new QemuVmm({ accel: 'tcg', logger });
    handle = await vmm.start(await spec({ kernelPath: path.join(runDir, 'no-such-kernel') }));
    const exit = await handle.exited;
    expect(exit.code).not.toBe(0);
    expect(await readFile(path.join(runDir, 'console.log'), 'utf8')).toContain('no-such-kernel');
  }, 30_000);
});
