import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CloudHypervisorApiClient,
  parseCloudHypervisorErrorBody,
} from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-api-client.js';

describe('parseCloudHypervisorErrorBody', () => {
  it('reads the JSON array of error-chain messages current releases send', () => {
    expect(parseCloudHypervisorErrorBody('["Error from API","The VM could not boot"]')).toEqual([
      'Error from API',
      'The VM could not boot',
    ]);
  });

  it('reads older object and plain-text bodies', () => {
    expect(parseCloudHypervisorErrorBody('{"code":"UNDEFINED","message":"VmNotCreated"}')).toEqual([
      'VmNotCreated',
    ]);
    expect(parseCloudHypervisorErrorBody('VmBoot(VmNotCreated)')).toEqual(['VmBoot(VmNotCreated)']);
    expect(parseCloudHypervisorErrorBody('  ')).toEqual([]);
  });
});

describe('CloudHypervisorApiClient over a Unix socket', () => {
  let dir: string;
  let server: Server;
  const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] =
    [];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-ch-api-'));
    seen.length = 0;
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (req.url === '/api/v1/vm.info') {
          const text = '{"state":"Running","config":{}}';
          res.writeHead(200, { 'Content-Length': Buffer.byteLength(text) });
          res.end(text);
        } else if (req.url === '/api/v1/vm.boot') {
          const text = '["Error from API","VM is not created"]';
          res.writeHead(404, { 'Content-Length': Buffer.byteLength(text) });
          res.end(text);
        } else {
          res.writeHead(204);
          res.end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'api.sock'), resolve));
  });

  afterEach(async () => {
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    await rm(dir, { recursive: true, force: true });
  });

  it('sends JSON bodies with Content-Length and Content-Type, and bodiless PUTs with Content-Length: 0', async () => {
    const client = new CloudHypervisorApiClient({ socketPath: path.join(dir, 'api.sock') });
    await client.call('PUT', 'vm.create', { payload: { kernel: '/k' } });
    await client.shutdownVm();
    expect(seen[0]).toMatchObject({
      method: 'PUT',
      url: '/api/v1/vm.create',
      body: '{"payload":{"kernel":"/k"}}',
    });
    expect(seen[0]!.headers['content-length']).toBe('27');
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    expect(seen[0]!.headers['transfer-encoding']).toBeUndefined();
    expect(seen[1]!.headers['content-length']).toBe('0');
  });

  it('parses JSON answers', async () => {
    const client = new CloudHypervisorApiClient({ socketPath: path.join(dir, 'api.sock') });
    expect(await client.vmInfo()).toMatchObject({ state: 'Running' });
  });

  it('turns an error status into VMM_API_ERROR with status and messages', async () => {
    const client = new CloudHypervisorApiClient({ socketPath: path.join(dir, 'api.sock') });
    await expect(client.bootVm()).rejects.toMatchObject({
      code: 'VMM_API_ERROR',
      details: {
        status: 404,
        endpoint: 'vm.boot',
        messages: ['Error from API', 'VM is not created'],
      },
    });
  });

  it('reports an absent socket as VMM_API_ERROR', async () => {
    const client = new CloudHypervisorApiClient({ socketPath: path.join(dir, 'none.sock') });
    await expect(client.ping()).rejects.toMatchObject({ code: 'VMM_API_ERROR' });
  });
});
