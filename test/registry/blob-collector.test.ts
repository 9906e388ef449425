import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryHarness } from '../helpers/registry-harness.js';
import {
  imageManifest,
  sha256Digest,
  testBlob,
  type TestBlob,
} from '../helpers/registry-oci-content.js';

const GRACE_SECONDS = 3600;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let h: RegistryHarness;
let token: string;

async function freshToken(): Promise<void> {
  token = await h.buildToken({ id: 'b_gc', tenant: 'acme', repository: 'acme/one' });
}

/** Moves the clock on; the build token is issued again, since the old one has expired. */
async function advance(ms: number): Promise<void> {
  h.clock.advance(ms);
  await freshToken();
}

beforeEach(async () => {
  h = await RegistryHarness.start();
  await freshToken();
});

afterEach(async () => {
  await h.close();
});

function call(method: string, pathname: string, body?: Buffer, contentType?: string) {
  return fetch(`${h.url}${pathname}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(contentType === undefined ? {} : { 'content-type': contentType }),
    },
    ...(body === undefined ? {} : { body }),
  });
}

async function pushBlob(repo: string, blob: TestBlob): Promise<void> {
  const res = await call(
    'POST',
    `/v2/${repo}/blobs/uploads/?digest=${blob.digest}`,
    blob.bytes,
    'application/octet-stream',
  );
  await res.arrayBuffer();
  expect(res.status).toBe(201);
}

async function pushImage(repo: string, tag: string, blobs: TestBlob[]): Promise<string> {
  for (const blob of blobs) await pushBlob(repo, blob);
  const [config, ...layers] = blobs;
  const manifest = imageManifest({ config: config!, layers });
  const res = await call('PUT', `/v2/${repo}/manifests/${tag}`, manifest, OCI_MANIFEST);
  await res.arrayBuffer();
  expect(res.status).toBe(201);
  return sha256Digest(manifest);
}

/** The blob's file, where the blob store keeps it. */
function blobFile(blob: TestBlob): string {
  const hex = blob.digest.slice('sha256:'.length);
  return path.join(h.dataDir, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

describe('blob garbage collection', () => {
  it('removes the unshared blobs of deleted manifests from disk once the grace period has passed', async () => {
    const shared = testBlob('shared base layer');
    const onlyOne = testBlob('layer of image one only');
    const configOne = testBlob('{"one":1}');
    const configTwo = testBlob('{"two":2}');
    const one = await pushImage('acme/one', 'v1', [configOne, shared, onlyOne]);
    await pushImage('acme/one', 'v2', [configTwo, shared]);
    const del = await call('DELETE', `/v2/acme/one/manifests/${one}`);
    expect(del.status).toBe(202);

    // Within the grace period nothing goes, referenced or not.
    await advance((GRACE_SECONDS - 1) * 1000);
    expect(await h.registry.collector.sweep()).toEqual({ removedBlobs: 0, removedBytes: 0 });

    await advance(2000);
    const before = h.registry.blobTotals();
    expect(await h.registry.collector.sweep()).toEqual({
      removedBlobs: 2,
      removedBytes: onlyOne.bytes.length + configOne.bytes.length,
    });
    expect(existsSync(blobFile(onlyOne))).toBe(false);
    expect(existsSync(blobFile(configOne))).toBe(false);
    expect(existsSync(blobFile(shared))).toBe(true);
    expect(existsSync(blobFile(configTwo))).toBe(true);
    expect(h.registry.blobTotals()).toEqual({
      count: before.count - 2,
      bytes: before.bytes - onlyOne.bytes.length - configOne.bytes.length,
    });
    const gone = await call('GET', `/v2/acme/one/blobs/${onlyOne.digest}`);
    expect(gone.status).toBe(404);
    const kept = await call('GET', `/v2/acme/one/blobs/${shared.digest}`);
    expect(Buffer.from(await kept.arrayBuffer())).toEqual(shared.bytes);
  });

  it('keeps a blob a client was just told exists, so the manifest pushed next finds it', async () => {
    const config = testBlob('{"late":true}');
    await pushBlob('acme/one', config);
    await advance((GRACE_SECONDS + 10) * 1000);
    // A client about to push: HEAD says the blob is there, so it skips the upload.
    const head = await call('HEAD', `/v2/acme/one/blobs/${config.digest}`);
    expect(head.status).toBe(200);
    expect((await h.registry.collector.sweep()).removedBlobs).toBe(0);
    const manifest = imageManifest({ config, layers: [] });
    const put = await call('PUT', '/v2/acme/one/manifests/late', manifest, OCI_MANIFEST);
    expect(put.status).toBe(201);
    expect(existsSync(blobFile(config))).toBe(true);
  });

  it('never loses a blob pushed again while a sweep removes its old copy', async () => {
    for (let i = 0; i < 5; i++) {
      const blob = testBlob(`re-pushed ${i}`);
      await pushBlob('acme/one', blob);
      await advance((GRACE_SECONDS + 10) * 1000);
      // The sweep and the push interleave however the event loop runs them.
      const [swept] = await Promise.all([
        h.registry.collector.sweep(),
        pushBlob('acme/one', blob).then(async () => {
          const manifest = imageManifest({ config: blob, layers: [] });
          const put = await call('PUT', `/v2/acme/one/manifests/r${i}`, manifest, OCI_MANIFEST);
          expect(put.status).toBe(201);
        }),
      ]);
      expect(swept.removedBlobs).toBeLessThanOrEqual(1);
      expect(existsSync(blobFile(blob))).toBe(true);
      const got = await call('GET', `/v2/acme/one/blobs/${blob.digest}`);
      expect(Buffer.from(await got.arrayBuffer())).toEqual(blob.bytes);
    }
  });
});
