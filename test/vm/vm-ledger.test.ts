import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readProcessStartTicks } from '../../src/vm/process-identity.js';
import { QemuVmm } from '../../src/vm/qemu/qemu-vmm.js';
import { VmBuildRunner } from '../../src/vm/vm-build-runner.js';
import { VmLedger } from '../../src/vm/vm-ledger.js';
import { defaultEgressConfig } from '../helpers/default-egress-config.js';
import { ManualClock } from '../helpers/manual-clock.js';

const logger = pino({ level: 'silent' });

function startSleep(): Promise<ChildProcess & { pid: number }> {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('spawn', () => {
      resolve(child as ChildProcess & { pid: number });
    });
    child.once('error', reject);
  });
}

function exitOf(child: ChildProcess): Promise<NodeJS.Signals | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode);
  return new Promise((resolve) =>
    child.once('exit', (_c, s) => {
      resolve(s);
    }),
  );
}

describe('VmLedger and VmBuildRunner.recover', () => {
  let dir: string;
  let children: ChildProcess[];
  let ledger: VmLedger;
  let runRoot: string;
  let runner: VmBuildRunner;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-ledger-'));
    children = [];
    ledger = new VmLedger(path.join(dir, 'vm-ledger'));
    runRoot = path.join(dir, 'vms');
    const time = new ManualClock(0);
    runner = new VmBuildRunner({
      vmm: new QemuVmm({ accel: 'tcg', logger }),
      ledger,
      clock: time,
      scheduler: time,
      logger,
      runRoot,
      imageDir: path.join(dir, 'no-image'),
      scratchBytes: 1024 ** 3,
      bootTimeoutSeconds: 5,
      limits: { maxUnpackedBytes: 1024, maxEntries: 10, maxPathBytes: 100 },
      mirrorUpstreams: [],
      registryTarget: () => ({ host: '127.0.0.1', port: 1 }),
      egress: defaultEgressConfig(),
    });
  });

  afterEach(async () => {
    for (const c of children) c.kill('SIGKILL');
    await runner.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips entries and forgets removed ones', async () => {
    await ledger.record({ vmId: 'b_one', runDir: path.join(runRoot, 'b_one'), process: null });
    await ledger.record({
      vmId: 'b_two',
      runDir: path.join(runRoot, 'b_two'),
      process: { vmId: 'b_two', pid: 1234, startTicks: 99, executable: 'qemu-system-x86_64' },
    });
    expect((await ledger.list()).entries.map((e) => e.vmId)).toEqual(['b_one', 'b_two']);
    await ledger.remove('b_one');
    await ledger.remove('b_one');
    const { entries } = await ledger.list();
    expect(entries).toEqual([
      {
        vmId: 'b_two',
        runDir: path.join(runRoot, 'b_two'),
        process: { vmId: 'b_two', pid: 1234, startTicks: 99, executable: 'qemu-system-x86_64' },
      },
    ]);
  });

  it('rejects ids that could escape the ledger directory', async () => {
    await expect(ledger.record({ vmId: '../x', runDir: '/tmp/x', process: null })).rejects.toThrow(
      /invalid VM id/,
    );
  });

  it('kills a recorded process whose pid, start time and executable match, and removes its run dir', async () => {
    const sleeper = await startSleep();
    children.push(sleeper);
    const startTicks = await readProcessStartTicks(sleeper.pid);
    expect(startTicks).not.toBeNull();
    const runDir = path.join(runRoot, 'b_crashed');
    await mkdir(runDir, { recursive: true });
    await writeFile(path.join(runDir, 'scratch.img'), 'x');
    await ledger.record({
      vmId: 'b_crashed',
      runDir,
      process: {
        vmId: 'b_crashed',
        pid: sleeper.pid,
        startTicks: startTicks!,
        executable: 'sleep',
      },
    });

    const report = await runner.recover();

    expect(report).toEqual({ killedProcesses: 1, removedPaths: 1 });
    expect(await exitOf(sleeper)).toBe('SIGKILL');
    expect(existsSync(runDir)).toBe(false);
    expect((await ledger.list()).entries).toEqual([]);
  });

  it('does not kill a process whose pid was reused (start time differs)', async () => {
    const sleeper = await startSleep();
    children.push(sleeper);
    const startTicks = (await readProcessStartTicks(sleeper.pid))!;
    await ledger.record({
      vmId: 'b_reused',
      runDir: path.join(runRoot, 'b_reused'),
      process: {
        vmId: 'b_reused',
        pid: sleeper.pid,
        startTicks: startTicks - 1,
        executable: 'sleep',
      },
    });

    const report = await runner.recover();

    expect(report.killedProcesses).toBe(0);
    expect(sleeper.exitCode).toBeNull();
    expect(sleeper.signalCode).toBeNull();
    expect(await readProcessStartTicks(sleeper.pid)).toBe(startTicks);
  });

  it('does not kill a process whose executable differs from the recorded one', async () => {
    const sleeper = await startSleep();
    children.push(sleeper);
    const startTicks = (await readProcessStartTicks(sleeper.pid))!;
    await ledger.record({
      vmId: 'b_other',
      runDir: path.join(runRoot, 'b_other'),
      process: { vmId: 'b_other', pid: sleeper.pid, startTicks, executable: 'qemu-system-x86_64' },
    });

    expect((await runner.recover()).killedProcesses).toBe(0);
    expect(await readProcessStartTicks(sleeper.pid)).toBe(startTicks);
  });

  it('never removes a recorded path outside its run root', async () => {
    const outside = path.join(dir, 'precious');
    await mkdir(outside);
    await ledger.record({ vmId: 'b_evil', runDir: outside, process: null });

    const report = await runner.recover();

    expect(report.removedPaths).toBe(0);
    expect(existsSync(outside)).toBe(true);
    expect(await readdir(path.join(dir, 'vm-ledger'))).toEqual([]);
  });

  it('drops unreadable ledger files', async () => {
    await mkdir(path.join(dir, 'vm-ledger'), { recursive: true });
    await writeFile(path.join(dir, 'vm-ledger', 'b_bad.json'), '{not json');
    await writeFile(path.join(dir, 'vm-ledger', 'b_half.json.tmp'), '{');
    expect(await runner.recover()).toEqual({ killedProcesses: 0, removedPaths: 0 });
    expect(await readdir(path.join(dir, 'vm-ledger'))).toEqual([]);
  });
});
