import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { sampleTar, tarEntry } from '../helpers/tar-builder.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness({
    env: { KILN_MAX_UPLOADS_PER_TENANT: '1', KILN_MAX_CONCURRENT_UPLOADS: '2' },
  });
});
afterEach(async () => {
  await h.close();
});

/** An upload that sends its start and then holds (as a slow client or a long inspection). */
async function heldUpload(tenant: string): Promise<http.ClientRequest> {
  const dirs = h.buildDirs().length;
  const req = http.request(`${h.url}/builds`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${await h.token(tenant)}`,
      'content-type': 'multipart/form-data; boundary=x',
    },
  });
  req.on('error', () => undefined);
  req.write(
    Buffer.concat([
      Buffer.from('--x\r\nContent-Disposition: form-data; name="source"; filename="s.tar"\r\n\r\n'),
      tarEntry({ name: 'slow.bin', size: 1024 * 1024 }),
    ]),
  );
  // The manager creates the build's directory once the upload holds its slot.
  await eventually(() => h.buildDirs().length === dirs + 1);
  return req;
}

async function post(tenant: string) {
  const fd = new FormData();
  fd.append('source', new Blob([sampleTar()]), 'a.tar');
  return h.app.request('/builds', {
    method: 'POST',
    body: fd,
    headers: { authorization: `Bearer ${await h.token(tenant)}` },
  });
}

describe('uploads being inspected at once are capped', () => {
  it('answers 429 TENANT_UPLOADS_BUSY past the per-tenant cap and UPLOADS_BUSY past the global one', async () => {
    const acme = await heldUpload('acme');
    const busy = await post('acme');
    expect(busy.status).toBe(429);
    expect(await busy.json()).toMatchObject({
      error: { code: 'TENANT_UPLOADS_BUSY', details: { limit: 1 } },
    });

    const beta = await heldUpload('beta');
    const full = await post('gamma');
    expect(full.status).toBe(429);
    expect(await full.json()).toMatchObject({
      error: { code: 'UPLOADS_BUSY', details: { limit: 2 } },
    });
    expect(h.buildRows()).toBe(0);

    // An upload that ends (here: its client leaves) gives its slot back.
    acme.destroy();
    beta.destroy();
    await eventually(() => h.buildDirs().length === 0);
    expect((await post('acme')).status).toBe(202);
    expect((await post('gamma')).status).toBe(202);
  });
});
