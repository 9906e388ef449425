import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { E2eClient } from '../helpers/e2e-client.js';
import {
  disposeE2eDaemon,
  seedBaseImage,
  startE2eDaemon,
  type E2eDaemon,
} from '../helpers/e2e-daemon.js';
import { writeSourceTarball } from '../helpers/e2e-source.js';
import { findQemuProcesses, isProcessRunning } from '../helpers/e2e-vm-processes.js';

const ENV = {
  KILN_MAX_CONCURRENT_BUILDS: '1',
  KILN_DEFAULT_MEMORY_MB: '1024',
  KILN_DEFAULT_CPUS: '1',
  KILN_SCRATCH_BYTES: '8G',
  KILN_BOOT_TIMEOUT_SECONDS: '120',
};

describe('daemon crash during a build, end to end', () => {
  let first: E2eDaemon | undefined;
  let second: E2eDaemon | undefined;
  let work: string | undefined;

  afterAll(async () => {
    await first?.kill9();
    await disposeE2eDaemon(second);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('kill -9 mid-build then restart: no VM process or volume of the crashed run is left, and the build is re-run once', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-restart-'));
    first = await startE2eDaemon({ env: ENV });
    await seedBaseImage(first, await first.token('operator', ['registry:admin']));
    const token = await first.token('acme', ['builds:write', 'builds:read']);
    const src = await writeSourceTarball(path.join(work, 'src.tar.gz'), {
      Dockerfile: ['FROM busybox', 'RUN sleep 8 && echo slept > /slept.txt', ''].join('\n'),
    });
    const submitted = await new E2eClient(first, token).submit(src.path);
    await new E2eClient(first, token).waitFor(submitted.id, (b) => b.status === 'building');
    const vms = await findQemuProcesses(submitted.id);
    expect(vms).toHaveLength(1);
    const runDir = path.join(first.dataDir, 'vms', submitted.id);
    expect(existsSync(path.join(runDir, 'scratch.img'))).toBe(true);

    await first.kill9();
    const dataDir = first.dataDir;
    first = undefined;

    second = await startE2eDaemon({ dataDir, env: ENV });
    const recovery = second.logLines.find((l) => l.msg === 'runner recovery done');
    expect(recovery).toMatchObject({ removedPaths: 1 });
    // The crashed run's QEMU is gone (PR_SET_PDEATHSIG or recovery killed it).
    for (const pid of vms) expect(await isProcessRunning(pid)).toBe(false);

    const client = new E2eClient(second, token);
    const build = await client.waitFor(submitted.id);
    expect(build.attempts).toBe(2);
    if (build.status === 'ready') {
      expect(build.result?.image_digest).toMatch(/^sha256:/);
    } else {
      expect(build.error?.code).toBe('daemon_restarted');
    }
    expect(await findQemuProcesses(dataDir)).toEqual([]);
    expect(await readdir(path.join(dataDir, 'vms'))).toEqual([]);
    expect(await readdir(path.join(dataDir, 'vm-ledger'))).toEqual([]);
  }, 300_000);
});
