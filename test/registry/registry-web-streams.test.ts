import { readdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryHarness } from '../helpers/registry-harness.js';
import {
  imageManifest,
  sha256Digest,
  sha512Digest,
  testBlob,
} from '../helpers/registry-oci-content.js';

// The daemon may hand the registry plain `Request`s (no node bindings): every body then
// arrives as a web stream. These are the upload paths again through that route.

let h: RegistryHarness;
let auth: string;

async function call(
  method: string,
  url: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
) {
  return fetch(`${h.url}${url}`, {
    method,
    headers: { authorization: auth, ...headers },
    ...(body === undefined ? {} : { body }),
  });
}

beforeEach(async () => {
  h = await RegistryHarness.start({ webStreams: true, env: { KILN_MAX_MANIFEST_BYTES: '4096' } });
  auth = `Bearer ${await h.buildToken({ id: 'b_web', tenant: 'acme', repository: 'acme/web' })}`;
});

afterEach(async () => {
  await h.close();
});

describe('uploads through web-stream bodies', () => {
  it('takes monolithic sha256 and sha512 uploads and serves them back', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17, 5);
    for (const digest of [sha256Digest(data), sha512Digest(data)]) {
      expect(
        (await call('POST', `/v2/acme/web/blobs/uploads/?digest=${digest}`, data)).status,
      ).toBe(201);
      const res = await call('GET', `/v2/acme/web/blobs/${digest}`);
      // Compared by digest: a deep equality over megabytes takes vitest many seconds.
      expect(sha256Digest(Buffer.from(await res.arrayBuffer()))).toBe(sha256Digest(data));
    }
  });

  it('takes ordered chunks, refuses an out-of-order one, and completes with a last chunk', async () => {
    const data = Buffer.from('web streams chunked upload');
    const loc = (await call('POST', '/v2/acme/web/blobs/uploads/')).headers.get('location')!;
    expect((await call('PATCH', loc, data.subarray(0, 4), { 'content-range': '0-3' })).status).toBe(
      202,
    );
    expect(
      (await call('PATCH', loc, data.subarray(8, 10), { 'content-range': '8-9' })).status,
    ).toBe(416);
    expect((await call('PATCH', loc, data.subarray(4, 10))).status).toBe(202);
    const done = await call('PUT', `${loc}?digest=${sha256Digest(data)}`, data.subarray(10), {
      'content-range': `10-${data.length - 1}`,
    });
    expect(done.status).toBe(201);
    expect(await (await call('GET', `/v2/acme/web/blobs/${sha256Digest(data)}`)).text()).toBe(
      data.toString(),
    );
  });

  it('cuts an interrupted chunk back to the last complete byte', async () => {
    const loc = (await call('POST', '/v2/acme/web/blobs/uploads/')).headers.get('location')!;
    await call('PATCH', loc, 'abc', { 'content-range': '0-2' });
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: h.port,
        path: loc,
        method: 'PATCH',
        headers: { authorization: auth, 'content-length': '5000', 'content-range': '3-5002' },
      });
      req.on('error', () => {
        resolve();
      });
      req.write(Buffer.alloc(2000, 1), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50);
      });
    });
    let resumed = await call('PATCH', loc, 'def', { 'content-range': '3-5' });
    for (let i = 0; i < 100 && resumed.status === 409; i++) {
      await new Promise((r) => setTimeout(r, 20));
      resumed = await call('PATCH', loc, 'def', { 'content-range': '3-5' });
    }
    expect(resumed.status).toBe(202);
    expect((await call('PUT', `${loc}?digest=${sha256Digest(Buffer.from('abcdef'))}`)).status).toBe(
      201,
    );
    expect(await readdir(path.join(h.dataDir, 'registry', 'uploads'))).toEqual([]);
  });

  it('stores a manifest and refuses one above the size limit with 413', async () => {
    const config = testBlob('{}');
    await call('POST', `/v2/acme/web/blobs/uploads/?digest=${config.digest}`, config.bytes);
    const ok = imageManifest({ config, layers: [] });
    const put = await call('PUT', '/v2/acme/web/manifests/v1', ok, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    });
    expect(put.status).toBe(201);
    const big = imageManifest({ config, layers: [], annotations: { pad: 'y'.repeat(5000) } });
    const refused = await call('PUT', '/v2/acme/web/manifests/v2', big, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    });
    expect(refused.status).toBe(413);
  });
});
