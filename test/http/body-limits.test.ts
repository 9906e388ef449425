import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { sendOversized } from '../helpers/oversized-body.js';
import { tarEntry } from '../helpers/tar-builder.js';

const MiB = 1024 * 1024;
const DIGEST = `sha256:${'0'.repeat(64)}`;

function basic(token: string): string {
  return `Basic ${Buffer.from(`kiln:${token}`).toString('base64')}`;
}

describe('every body the daemon reads is bounded while it streams', () => {
  let h: Harness;
  let apiToken: string;
  let admin: string;

  beforeAll(async () => {
    h = await createHarness({
      env: {
        KILN_MAX_JSON_BODY_BYTES: '2K',
        KILN_MAX_TOKEN_BODY_BYTES: '2K',
        KILN_MAX_MANIFEST_BYTES: '4K',
        KILN_MAX_BLOB_BYTES: '64K',
        KILN_MAX_SOURCE_BYTES: '64K',
      },
    });
    apiToken = await h.token('acme');
    admin = basic(
      await h.apiTokens.create({
        tenant: 'ops',
        scopes: ['registry:admin'],
        ttlSeconds: 3600,
      }),
    );
  });
  afterAll(async () => {
    await h.close();
  });

  async function newSession(): Promise<string> {
    const res = await fetch(`${h.url}/v2/library/big/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: admin },
    });
    expect(res.status).toBe(202);
    return res.headers.get('location')!;
  }

  describe.each(['length', 'chunked'] as const)('with %s framing', (framing) => {
    const send = (
      target: string,
      method: string,
      headers: Record<string, string>,
      prefix?: Buffer,
    ) =>
      sendOversized(`${h.url}${target}`, {
        method,
        headers,
        bytes: 8 * MiB,
        framing,
        ...(prefix === undefined ? {} : { prefix }),
      });
    const uploadFiles = () => readdirSync(path.join(h.dataDir, 'registry', 'uploads'));

    it('PUT /secrets/:id answers 413 BODY_TOO_LARGE with the limit', async () => {
      const res = await send('/secrets/big', 'PUT', {
        authorization: `Bearer ${apiToken}`,
        'content-type': 'application/json',
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toEqual({
        error: {
          code: 'BODY_TOO_LARGE',
          message: 'The request body exceeds its limit of 2048 bytes.',
          details: { limit: 2048 },
        },
      });
      expect(h.secrets.list('acme')).toEqual([]);
    });

    it('POST /v2/token (no credentials needed) answers 413 SIZE_INVALID', async () => {
      const res = await send('/v2/token', 'POST', {
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({
        errors: [{ code: 'SIZE_INVALID', detail: { limit: 2048 } }],
      });
    });

    it('PUT a manifest answers 413 SIZE_INVALID', async () => {
      const res = await send('/v2/library/big/manifests/latest', 'PUT', {
        authorization: admin,
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({
        errors: [{ code: 'SIZE_INVALID', detail: { limit: 4096 } }],
      });
    });

    it('a monolithic blob upload answers 413 SIZE_INVALID and leaves no upload file', async () => {
      const filesBefore = uploadFiles();
      const res = await send(`/v2/library/big/blobs/uploads/?digest=${DIGEST}`, 'POST', {
        authorization: admin,
        'content-type': 'application/octet-stream',
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({
        errors: [{ code: 'SIZE_INVALID', detail: { limit: 65536 } }],
      });
      await eventually(() => uploadFiles().length === filesBefore.length);
      expect(uploadFiles().sort()).toEqual(filesBefore.sort());
    });

    it('a PATCH chunk answers 413 SIZE_INVALID and leaves the session as it was', async () => {
      const location = await newSession();
      const res = await send(location, 'PATCH', {
        authorization: admin,
        'content-type': 'application/octet-stream',
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'SIZE_INVALID' }] });
      const status = await fetch(`${h.url}${location}`, { headers: { authorization: admin } });
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe('0-0');
    });

    it('the closing PUT of a session answers 413 SIZE_INVALID', async () => {
      const location = await newSession();
      const res = await send(`${location}?digest=${DIGEST}`, 'PUT', {
        authorization: admin,
        'content-type': 'application/octet-stream',
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'SIZE_INVALID' }] });
    });

    it('POST /builds answers 413 SOURCE_TOO_LARGE', async () => {
      // A well-formed start: one tar entry far larger than the limit, then filler bytes.
      const preamble = Buffer.concat([
        Buffer.from(
          '--x\r\nContent-Disposition: form-data; name="source"; filename="s.tar"\r\n' +
            'Content-Type: application/x-tar\r\n\r\n',
        ),
        tarEntry({ name: 'big.bin', size: 1024 * MiB }),
      ]);
      const res = await send(
        '/builds',
        'POST',
        {
          authorization: `Bearer ${apiToken}`,
          'content-type': 'multipart/form-data; boundary=x',
        },
        preamble,
      );
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'SOURCE_TOO_LARGE' } });
      expect(h.buildRows()).toBe(0);
    });
  });
});

describe('memory while an oversized body is refused', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('a 256 MiB chunked PUT /secrets/:id is cut off with flat memory', async () => {
    const token = await h.token('acme');
    const before = process.memoryUsage.rss();
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 5);
    try {
      const res = await sendOversized(`${h.url}/secrets/big`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        bytes: 256 * MiB,
        framing: 'chunked',
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'BODY_TOO_LARGE' } });
      expect(res.sent).toBeLessThan(256 * MiB);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage.rss());
    console.info(`rss growth while refusing 256 MiB: ${((peak - before) / MiB).toFixed(1)} MiB`);
    expect(peak - before).toBeLessThan(64 * MiB);
  });
});
