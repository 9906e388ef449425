import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/registry/blob-store.js';
import { parseDigest } from '../../src/registry/digest.js';
import { openFilesUnder } from '../helpers/open-files.js';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { sha256Digest } from '../helpers/registry-oci-content.js';

const MiB = 1024 * 1024;

describe('BlobStore.send', () => {
  let root: string;
  let store: BlobStore;

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'kiln-blob-send-'));
    store = new BlobStore(root);
    await store.init();
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function putBlob(bytes: Buffer) {
    const digest = parseDigest(sha256Digest(bytes));
    await mkdir(path.dirname(store.blobPath(digest)), { recursive: true });
    await writeFile(store.blobPath(digest), bytes);
    return digest;
  }

  it('hands over every byte in order, across its reused buffers, and for a range', async () => {
    const bytes = randomBytes(5 * MiB + 3);
    const digest = await putBlob(bytes);
    const collect = async (range: { start: number; end: number }) => {
      const chunks: Buffer[] = [];
      await store.send(digest, range, async (chunk) => {
        // The buffer is reused once this resolves: keep a copy.
        chunks.push(Buffer.from(chunk));
        await new Promise((resolve) => setImmediate(resolve));
      });
      return Buffer.concat(chunks);
    };
    expect((await collect({ start: 0, end: bytes.length - 1 })).equals(bytes)).toBe(true);
    const start = 2 * MiB - 7;
    const end = 4 * MiB + 11;
    expect((await collect({ start, end })).equals(bytes.subarray(start, end + 1))).toBe(true);
    expect(await openFilesUnder(root)).toEqual([]);
  });

  it('counts the blob as busy until it settles, and closes the file when the writer fails', async () => {
    const digest = await putBlob(randomBytes(3 * MiB));
    let calls = 0;
    const sending = store.send(digest, { start: 0, end: 3 * MiB - 1 }, () => {
      calls += 1;
      return Promise.reject(new Error('client gone'));
    });
    expect(store.isBusy(digest)).toBe(true);
    await expect(sending).rejects.toThrow('client gone');
    expect(calls).toBe(1);
    expect(store.isBusy(digest)).toBe(false);
    expect(await openFilesUnder(root)).toEqual([]);
  });

  it('rejects when the file ends before the range does', async () => {
    const digest = await putBlob(randomBytes(1000));
    await expect(
      store.send(digest, { start: 0, end: 1999 }, () => Promise.resolve()),
    ).rejects.toThrow(/ends before its range/);
    expect(store.isBusy(digest)).toBe(false);
    expect(await openFilesUnder(root)).toEqual([]);
  });
});

describe('blob GET over the node server', () => {
  let h: RegistryHarness;
  let token: string;
  const bytes = randomBytes(5 * MiB + 123);
  const digest = sha256Digest(bytes);

  beforeEach(async () => {
    h = await RegistryHarness.start();
    token = await h.buildToken({
      id: 'b_send',
      tenant: 'acme',
      repository: 'acme/app',
      cacheRepository: 'cache/acme/main',
    });
    const res = await fetch(`${h.url}/v2/acme/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(res.status).toBe(201);
  });

  afterEach(async () => {
    await h.close();
  });

  it('serves a multi-chunk blob whole and a range across chunk boundaries', async () => {
    const whole = await fetch(`${h.url}/v2/acme/app/blobs/${digest}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(bytes.length));
    expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);

    const start = 2 * MiB - 1;
    const end = 4 * MiB + 1;
    const part = await fetch(`${h.url}/v2/acme/app/blobs/${digest}`, {
      headers: { authorization: `Bearer ${token}`, range: `bytes=${start}-${end}` },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes ${start}-${end}/${bytes.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(start, end + 1))).toBe(true);
  });

  it('lets go of the blob file when the client goes away mid-download', async () => {
    const url = new URL(`${h.url}/v2/acme/app/blobs/${digest}`);
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: { authorization: `Bearer ${token}` },
        },
        (res) => {
          expect(res.statusCode).toBe(200);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', (err) => {
        if (!req.destroyed) reject(err);
      });
      req.end();
    });
    const blobsDir = path.join(h.dataDir, 'registry');
    for (
      let i = 0;
      i < 100 && (await openFilesUnder(blobsDir)).some((f) => f.includes('/blobs/'));
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect((await openFilesUnder(blobsDir)).filter((f) => f.includes('/blobs/'))).toEqual([]);
    // The registry still serves the blob afterwards.
    const again = await fetch(`${h.url}/v2/acme/app/blobs/${digest}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(again.status).toBe(200);
  });
});
