import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { imageManifest, sha256Digest, testBlob } from '../helpers/registry-oci-content.js';

let h: RegistryHarness;
let token: string;

beforeEach(async () => {
  h = await RegistryHarness.start();
  token = await h.buildToken({ id: 'b_tags', tenant: 'acme', repository: 'acme/tags' });
});

afterEach(async () => {
  await h.close();
});

/** A PUT whose answer's raw header lines are kept (fetch joins repeated headers). */
function put(
  pathname: string,
  body: Buffer,
  contentType: string,
): Promise<{ status: number; raw: string[] }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${h.url}${pathname}`,
      {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': contentType,
          'content-length': body.length,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, raw: res.rawHeaders });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function headerLines(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === name) out.push(raw[i + 1] ?? '');
  }
  return out;
}

describe('manifest PUT with ?tag=', () => {
  it('answers an OCI-Tag header line for each tag accepted, and applies every tag', async () => {
    const config = testBlob('{"architecture":"amd64","os":"linux"}');
    const layer = testBlob('layer bytes');
    for (const blob of [config, layer]) {
      const res = await fetch(`${h.url}/v2/acme/tags/blobs/uploads/?digest=${blob.digest}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
        body: blob.bytes,
      });
      expect(res.status).toBe(201);
    }
    const manifest = imageManifest({ config, layers: [layer] });
    const digest = sha256Digest(manifest);
    const res = await put(
      `/v2/acme/tags/manifests/${digest}?tag=v1&tag=v1.2&tag=latest`,
      manifest,
      'application/vnd.oci.image.manifest.v1+json',
    );
    expect(res.status).toBe(201);
    expect(headerLines(res.raw, 'oci-tag')).toEqual(['v1', 'v1.2', 'latest']);
    expect(headerLines(res.raw, 'docker-content-digest')).toEqual([digest]);
    expect(headerLines(res.raw, 'docker-distribution-api-version')).toEqual(['registry/2.0']);
    for (const tag of ['v1', 'v1.2', 'latest']) {
      const got = await fetch(`${h.url}/v2/acme/tags/manifests/${tag}`, {
        method: 'HEAD',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(got.headers.get('docker-content-digest')).toBe(digest);
    }

    const plain = await put(
      `/v2/acme/tags/manifests/${digest}`,
      manifest,
      'application/vnd.oci.image.manifest.v1+json',
    );
    expect(plain.status).toBe(201);
    expect(headerLines(plain.raw, 'oci-tag')).toEqual([]);
  });
});
