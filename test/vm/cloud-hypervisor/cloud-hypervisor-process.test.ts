import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudHypervisorEvent } from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-event-parser.js';
import { CloudHypervisorProcess } from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-process.js';
import { createCloudHypervisorStandIn } from '../../helpers/cloud-hypervisor-stand-in.js';

const logger = pino({ level: 'silent' });

/** A PUT sent with chunked transfer encoding, i.e. without Content-Length. */
function putChunked(socketPath: string, endpoint: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method: 'PUT', path: `/api/v1/${endpoint}`, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => {
          resolve(res.statusCode ?? 0);
        });
      },
    );
    req.on('error', reject);
    req.write(body);
    req.end();
  });
}

describe('CloudHypervisorProcess against the stand-in', () => {
  let dir: string;
  let proc: CloudHypervisorProcess | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-ch-proc-'));
  });

  afterEach(async () => {
    await proc?.kill();
    proc = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function startProcess(
    events: CloudHypervisorEvent[] = [],
  ): Promise<CloudHypervisorProcess> {
    const standIn = await createCloudHypervisorStandIn({ dir });
    proc = await CloudHypervisorProcess.start({
      binary: standIn.binary,
      apiSocketPath: path.join(dir, 'ch-api.sock'),
      logger,
      startTimeoutMs: 10_000,
      onEvent: (event) => events.push(event),
    });
    return proc;
  }

  it('resolves once vmm.ping answers on the API socket', async () => {
    const p = await startProcess();
    expect(await p.api.ping()).toMatchObject({ version: '41.0.0', pid: p.pid });
    expect(p.hasExited).toBe(false);
  });

  it('answers 404 with an error body for vm.boot and vm.info before vm.create', async () => {
    const p = await startProcess();
    await expect(p.api.bootVm()).rejects.toMatchObject({
      code: 'VMM_API_ERROR',
      details: { status: 404, endpoint: 'vm.boot' },
    });
    await expect(p.api.vmInfo()).rejects.toMatchObject({ details: { status: 404 } });
  });

  it('answers 405 to vm.shutdown on a VM that is created but not booted', async () => {
    const p = await startProcess();
    await p.api.call('PUT', 'vm.create', { payload: { kernel: '/k' } });
    expect(await p.api.vmInfo()).toMatchObject({ state: 'Created' });
    await expect(p.api.shutdownVm()).rejects.toMatchObject({ details: { status: 405 } });
  });

  it('refuses a PUT without Content-Length with 400, as micro_http does', async () => {
    const p = await startProcess();
    expect(await putChunked(p.apiSocketPath, 'vm.create', '{"payload":{"kernel":"/k"}}')).toBe(400);
  });

  it('delivers event-monitor events and exits 0 on vmm.shutdown', async () => {
    const events: CloudHypervisorEvent[] = [];
    const p = await startProcess(events);
    await p.api.shutdownVmm().catch(() => undefined);
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(events.map((e) => `${e.source}/${e.event}`)).toEqual(['vmm/starting', 'vmm/shutdown']);
  });
});
