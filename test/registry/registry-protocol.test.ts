import { appendFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryHarness } from '../helpers/registry-harness.js';
import {
  imageManifest,
  sha256Digest,
  sha512Digest,
  testBlob,
  type TestBlob,
} from '../helpers/registry-oci-content.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let h: RegistryHarness;
let token: string;

async function call(
  method: string,
  pathAndQuery: string,
  init: { body?: Buffer | string; headers?: Record<string, string>; auth?: string | null } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  const auth = init.auth === undefined ? `Bearer ${token}` : init.auth;
  if (auth !== null) headers.authorization = auth;
  return fetch(`${h.url}${pathAndQuery}`, {
    method,
    headers,
    ...(init.body === undefined ? {} : { body: init.body }),
  });
}

async function pushBlob(repo: string, blob: TestBlob, auth?: string): Promise<Response> {
  return call('POST', `/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, {
    body: blob.bytes,
    headers: { 'content-type': 'application/octet-stream' },
    ...(auth === undefined ? {} : { auth }),
  });
}

async function pushManifest(repo: string, ref: string, body: Buffer, mediaType = OCI_MANIFEST) {
  return call('PUT', `/v2/${repo}/manifests/${ref}`, {
    body,
    headers: { 'content-type': mediaType },
  });
}

/** Pushes a config + one layer + manifest; returns the manifest's digest and bytes. */
async function pushImage(repo: string, tag: string, seed: string) {
  const config = testBlob(`{"seed":"${seed}"}`);
  const layer = testBlob(`layer-${seed}`);
  expect((await pushBlob(repo, config)).status).toBe(201);
  expect((await pushBlob(repo, layer)).status).toBe(201);
  const manifest = imageManifest({ config, layers: [layer] });
  const res = await pushManifest(repo, tag, manifest);
  expect(res.status).toBe(201);
  return { digest: sha256Digest(manifest), manifest, config, layer };
}

function uploadPath(res: Response): string {
  const location = res.headers.get('location');
  expect(location).toMatch(/^\/v2\/.+\/blobs\/uploads\/[0-9a-f-]+$/);
  return location!;
}

beforeEach(async () => {
  h = await RegistryHarness.start({ env: { KILN_MAX_MANIFEST_BYTES: '4096' } });
  token = await h.buildToken({
    id: 'b_protocol',
    tenant: 'acme',
    repository: 'acme/app',
    cacheRepository: 'cache/acme/main',
  });
});

afterEach(async () => {
  await h.close();
});

describe('ping and challenges', () => {
  it('answers an anonymous /v2/ with 401 and a Bearer challenge naming realm and service', async () => {
    const res = await call('GET', '/v2/', { auth: null });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer realm="http://${h.host}/v2/token",service="kiln"`,
    );
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('UNAUTHORIZED');
  });

  it('answers /v2/ with 200 for a valid registry token', async () => {
    const res = await call('GET', '/v2/');
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('builds the realm from the Host header the client used', async () => {
    const header = await new Promise<string | undefined>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: h.port, path: '/v2/', headers: { host: '10.0.2.100:5000' } },
        (res) => {
          res.resume();
          resolve(res.headers['www-authenticate']);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(header).toBe('Bearer realm="http://10.0.2.100:5000/v2/token",service="kiln"');
  });

  it('does not copy a Host header with quotes into the realm', async () => {
    const header = await new Promise<string | undefined>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: h.port, path: '/v2/', headers: { host: 'evil",x="y' } },
        (res) => {
          res.resume();
          resolve(res.headers['www-authenticate']);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(header).toBe(`Bearer realm="${h.config.server.publicUrl}/v2/token",service="kiln"`);
  });

  it('names every scope a request needs, with insufficient_scope for a token lacking them', async () => {
    const res = await call(
      'POST',
      '/v2/acme/other/blobs/uploads/?mount=sha256:' + 'a'.repeat(64) + '&from=acme/src',
    );
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer realm="http://${h.host}/v2/token",service="kiln",scope="repository:acme/other:pull,push repository:acme/src:pull",error="insufficient_scope"`,
    );
  });

  it('refuses a Bearer API token with invalid_token', async () => {
    const api = await h.apiToken('acme', ['registry:pull', 'registry:admin']);
    const res = await call('GET', '/v2/', { auth: `Bearer ${api}` });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('answers 405 UNSUPPORTED for a method an endpoint does not take', async () => {
    const res = await call('POST', '/v2/acme/app/tags/list');
    expect(res.status).toBe(405);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('UNSUPPORTED');
  });
});

describe('blob pull with ranges', () => {
  const blob = testBlob('0123456789abcdef');

  beforeEach(async () => {
    expect((await pushBlob('acme/app', blob)).status).toBe(201);
  });

  it('serves the whole blob with its digest and length, and HEAD without a body', async () => {
    const res = await call('GET', `/v2/acme/app/blobs/${blob.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(blob.digest);
    expect(res.headers.get('content-length')).toBe('16');
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(blob.bytes);
    const head = await call('HEAD', `/v2/acme/app/blobs/${blob.digest}`);
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('16');
  });

  it.each([
    ['bytes=2-5', '2345', 'bytes 2-5/16'],
    ['bytes=10-', 'abcdef', 'bytes 10-15/16'],
    ['bytes=-3', 'def', 'bytes 13-15/16'],
    ['bytes=14-99', 'ef', 'bytes 14-15/16'],
  ])('answers Range %s with 206 and the requested bytes', async (range, bytes, contentRange) => {
    const res = await call('GET', `/v2/acme/app/blobs/${blob.digest}`, { headers: { range } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(contentRange);
    expect(await res.text()).toBe(bytes);
  });

  it('answers 416 with the blob size for an unsatisfiable range', async () => {
    const res = await call('GET', `/v2/acme/app/blobs/${blob.digest}`, {
      headers: { range: 'bytes=16-20' },
    });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */16');
  });

  it('answers 404 BLOB_UNKNOWN for a blob not linked into the repository', async () => {
    const other = await h.buildToken({ id: 'b_other', tenant: 'acme', repository: 'acme/other' });
    const res = await call('GET', `/v2/acme/other/blobs/${blob.digest}`, {
      auth: `Bearer ${other}`,
    });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('BLOB_UNKNOWN');
  });
});

describe('blob uploads', () => {
  it('takes ordered chunks with Content-Range and refuses an out-of-order one with 416', async () => {
    const data = Buffer.from('hello, chunked world!');
    const start = await call('POST', '/v2/acme/app/blobs/uploads/');
    expect(start.status).toBe(202);
    expect(start.headers.get('range')).toBe('0-0');
    const loc = uploadPath(start);

    const first = await call('PATCH', loc, {
      body: data.subarray(0, 5),
      headers: { 'content-range': '0-4', 'content-type': 'application/octet-stream' },
    });
    expect(first.status).toBe(202);
    expect(first.headers.get('range')).toBe('0-4');

    const skipped = await call('PATCH', loc, {
      body: data.subarray(10, 15),
      headers: { 'content-range': '10-14' },
    });
    expect(skipped.status).toBe(416);
    expect(skipped.headers.get('range')).toBe('0-4');

    const second = await call('PATCH', loc, {
      body: data.subarray(5),
      headers: { 'content-range': `5-${data.length - 1}` },
    });
    expect(second.status).toBe(202);

    const status = await call('GET', loc);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${data.length - 1}`);

    const digest = sha256Digest(data);
    const done = await call('PUT', `${loc}?digest=${digest}`);
    expect(done.status).toBe(201);
    expect(done.headers.get('location')).toBe(`/v2/acme/app/blobs/${digest}`);
    expect(done.headers.get('docker-content-digest')).toBe(digest);
    const res = await call('GET', `/v2/acme/app/blobs/${digest}`);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(data);
  });

  it('takes a streamed PATCH without Content-Range and a last chunk on the closing PUT', async () => {
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    expect((await call('PATCH', loc, { body: 'streamed ' })).status).toBe(202);
    const digest = sha256Digest(Buffer.from('streamed body'));
    const done = await call('PUT', `${loc}?digest=${digest}`, { body: 'body' });
    expect(done.status).toBe(201);
    const res = await call('GET', `/v2/acme/app/blobs/${digest}`);
    expect(await res.text()).toBe('streamed body');
  });

  it('holds the last chunk of the closing PUT to its Content-Range as PATCH chunks are, and keeps the session', async () => {
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    await call('PATCH', loc, { body: 'first', headers: { 'content-range': '0-4' } });
    for (const chunk of ['end', 'endings']) {
      // The digest is that of what was sent, so only the length check can refuse it.
      const sent = sha256Digest(Buffer.from(`first${chunk}`));
      const res = await call('PUT', `${loc}?digest=${sent}`, {
        body: chunk,
        headers: { 'content-range': '5-9' },
      });
      expect(res.status, chunk).toBe(416);
      expect(res.headers.get('range'), chunk).toBe('0-4');
      const body = (await res.json()) as { errors: { code: string }[] };
      expect(body.errors[0]?.code).toBe('BLOB_UPLOAD_INVALID');
      expect((await call('HEAD', `/v2/acme/app/blobs/${sent}`)).status).toBe(404);
      expect((await call('GET', loc)).headers.get('range')).toBe('0-4');
    }
    const whole = Buffer.from('firstends!');
    const done = await call('PUT', `${loc}?digest=${sha256Digest(whole)}`, {
      body: 'ends!',
      headers: { 'content-range': '5-9' },
    });
    expect(done.status).toBe(201);
    expect(await (await call('GET', `/v2/acme/app/blobs/${sha256Digest(whole)}`)).text()).toBe(
      'firstends!',
    );
  });

  it('writes no upload-session row for a monolithic POST, whether it succeeds or not', async () => {
    h.db.exec(`
      CREATE TEMP TABLE session_inserts (id TEXT);
      CREATE TEMP TRIGGER record_session_insert AFTER INSERT ON main.registry_upload_sessions
        BEGIN INSERT INTO session_inserts VALUES (new.id); END;
    `);
    const inserts = () => h.db.prepare('SELECT count(*) FROM session_inserts').pluck().get();
    expect((await pushBlob('acme/app', testBlob('monolithic'))).status).toBe(201);
    const wrong = sha256Digest(Buffer.from('not these bytes'));
    const mismatch = await call('POST', `/v2/acme/app/blobs/uploads/?digest=${wrong}`, {
      body: 'these bytes',
    });
    expect(mismatch.status).toBe(400);
    expect(inserts()).toBe(0);
    expect(await readdir(path.join(h.dataDir, 'registry', 'uploads'))).toEqual([]);
    // A session upload does write one: the trigger sees what it is meant to see.
    expect((await call('POST', '/v2/acme/app/blobs/uploads/')).status).toBe(202);
    expect(inserts()).toBe(1);
  });

  it('refuses a digest mismatch with DIGEST_INVALID and never exposes the bytes', async () => {
    const wrong = sha256Digest(Buffer.from('something else'));
    const res = await call('POST', `/v2/acme/app/blobs/uploads/?digest=${wrong}`, {
      body: 'actual bytes',
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('DIGEST_INVALID');
    expect((await call('HEAD', `/v2/acme/app/blobs/${wrong}`)).status).toBe(404);
    const real = sha256Digest(Buffer.from('actual bytes'));
    expect((await call('HEAD', `/v2/acme/app/blobs/${real}`)).status).toBe(404);
    expect(await readdir(path.join(h.dataDir, 'registry', 'uploads'))).toEqual([]);
  });

  it('refuses a malformed digest with DIGEST_INVALID', async () => {
    const res = await call('POST', '/v2/acme/app/blobs/uploads/?digest=sha256:abc', { body: 'x' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('DIGEST_INVALID');
  });

  it('stores and serves sha512 blobs, monolithic and chunked', async () => {
    const a = Buffer.from('sha512 monolithic');
    const da = sha512Digest(a);
    expect(
      (await call('POST', `/v2/acme/app/blobs/uploads/?digest=${da}`, { body: a })).status,
    ).toBe(201);
    const ga = await call('GET', `/v2/acme/app/blobs/${da}`);
    expect(ga.headers.get('docker-content-digest')).toBe(da);
    expect(Buffer.from(await ga.arrayBuffer())).toEqual(a);

    const b = Buffer.from('sha512 in two chunks');
    const db = sha512Digest(b);
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    await call('PATCH', loc, { body: b.subarray(0, 6), headers: { 'content-range': '0-5' } });
    await call('PATCH', loc, {
      body: b.subarray(6),
      headers: { 'content-range': `6-${b.length - 1}` },
    });
    expect((await call('PUT', `${loc}?digest=${db}`)).status).toBe(201);
    expect(await (await call('GET', `/v2/acme/app/blobs/${db}`)).text()).toBe(b.toString());
  });

  it('stores the empty blob', async () => {
    const empty = testBlob('');
    expect((await pushBlob('acme/app', empty)).status).toBe(201);
    const res = await call('GET', `/v2/acme/app/blobs/${empty.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('0');
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it('cancels an upload with DELETE, after which the session is unknown', async () => {
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    await call('PATCH', loc, { body: 'partial' });
    expect((await call('DELETE', loc)).status).toBe(204);
    const res = await call('GET', loc);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('BLOB_UPLOAD_UNKNOWN');
    expect(await readdir(path.join(h.dataDir, 'registry', 'uploads'))).toEqual([]);
  });
});

describe('cross-repository mount', () => {
  it('mounts with 201 when the credential may pull the source, else opens an upload with 202', async () => {
    const admin = await h.exchange(await h.apiToken('ops', ['registry:admin']), [
      'repository:library/base:pull,push',
    ]);
    const base = testBlob('base layer');
    expect((await pushBlob('library/base', base, `Bearer ${admin}`)).status).toBe(201);

    const mounted = await call(
      'POST',
      `/v2/acme/app/blobs/uploads/?mount=${base.digest}&from=library/base`,
    );
    expect(mounted.status).toBe(201);
    expect(mounted.headers.get('location')).toBe(`/v2/acme/app/blobs/${base.digest}`);
    expect((await call('HEAD', `/v2/acme/app/blobs/${base.digest}`)).status).toBe(200);

    const secret = testBlob('another build output');
    const owner = await h.buildToken({ id: 'b_owner', tenant: 'acme', repository: 'acme/private' });
    expect((await pushBlob('acme/private', secret, `Bearer ${owner}`)).status).toBe(201);
    const refused = await call(
      'POST',
      `/v2/acme/app/blobs/uploads/?mount=${secret.digest}&from=acme/private`,
    );
    expect(refused.status).toBe(202);
    uploadPath(refused);
    expect((await call('HEAD', `/v2/acme/app/blobs/${secret.digest}`)).status).toBe(404);
  });
});

describe('manifests', () => {
  it('stores by tag, serves by tag and digest with its media type, and HEAD answers the digest', async () => {
    const { digest, manifest } = await pushImage('acme/app', 'v1', 'one');
    const byTag = await call('GET', '/v2/acme/app/manifests/v1');
    expect(byTag.status).toBe(200);
    expect(byTag.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(byTag.headers.get('docker-content-digest')).toBe(digest);
    expect(Buffer.from(await byTag.arrayBuffer())).toEqual(manifest);
    const byDigest = await call('GET', `/v2/acme/app/manifests/${digest}`);
    expect(Buffer.from(await byDigest.arrayBuffer())).toEqual(manifest);
    const head = await call('HEAD', '/v2/acme/app/manifests/v1');
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(digest);
    expect(head.headers.get('content-length')).toBe(String(manifest.length));
  });

  it('accepts Docker schema2 manifests and lists, OCI indexes, and absent non-distributable layers', async () => {
    const config = testBlob('{"docker":true}');
    const layer = testBlob('docker layer');
    await pushBlob('acme/app', config);
    await pushBlob('acme/app', layer);
    const docker = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: {
          mediaType: 'application/vnd.docker.container.image.v1+json',
          digest: config.digest,
          size: config.bytes.length,
        },
        layers: [
          {
            mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
            digest: layer.digest,
            size: layer.bytes.length,
          },
          {
            mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
            digest: sha256Digest(Buffer.from('elsewhere')),
            size: 9,
            urls: ['https://example.invalid/l'],
          },
        ],
      }),
    );
    const put = await pushManifest(
      'acme/app',
      'docker',
      docker,
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    expect(put.status).toBe(201);
    const list = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
        manifests: [
          {
            mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
            digest: sha256Digest(docker),
            size: docker.length,
            platform: { os: 'linux', architecture: 'amd64' },
          },
        ],
      }),
    );
    expect(
      (
        await pushManifest(
          'acme/app',
          'list',
          list,
          'application/vnd.docker.distribution.manifest.list.v2+json',
        )
      ).status,
    ).toBe(201);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
            digest: sha256Digest(docker),
            size: docker.length,
          },
        ],
      }),
    );
    expect(
      (await pushManifest('acme/app', 'index', index, 'application/vnd.oci.image.index.v1+json'))
        .status,
    ).toBe(201);
    const got = await call('GET', '/v2/acme/app/manifests/list');
    expect(got.headers.get('content-type')).toBe(
      'application/vnd.docker.distribution.manifest.list.v2+json',
    );
  });

  it('accepts an index whose entries are blobs, as BuildKit cache exports are, but not unknown ones', async () => {
    const cacheConfig = testBlob('{"layers":[]}');
    const cacheLayer = testBlob('cache layer');
    await pushBlob('acme/app', cacheConfig);
    await pushBlob('acme/app', cacheLayer);
    const entry = (b: TestBlob, mediaType: string) => ({
      mediaType,
      digest: b.digest,
      size: b.bytes.length,
    });
    const index = (entries: object[]) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: entries,
        }),
      );
    const cache = index([
      entry(cacheLayer, 'application/vnd.oci.image.layer.v1.tar+gzip'),
      entry(cacheConfig, 'application/vnd.buildkit.cacheconfig.v0'),
    ]);
    const ok = await pushManifest(
      'acme/app',
      'cache',
      cache,
      'application/vnd.oci.image.index.v1+json',
    );
    expect(ok.status).toBe(201);
    const unknown = index([
      entry(testBlob('never pushed'), 'application/vnd.oci.image.manifest.v1+json'),
    ]);
    const refused = await pushManifest(
      'acme/app',
      'bad',
      unknown,
      'application/vnd.oci.image.index.v1+json',
    );
    expect(refused.status).toBe(400);
    const body = (await refused.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('refuses a manifest whose blobs are not in the repository with MANIFEST_BLOB_UNKNOWN', async () => {
    const manifest = imageManifest({ config: testBlob('{}'), layers: [testBlob('never pushed')] });
    const res = await pushManifest('acme/app', 'broken', manifest);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('refuses a manifest pushed under a digest it does not hash to', async () => {
    const config = testBlob('{}');
    await pushBlob('acme/app', config);
    const manifest = imageManifest({ config, layers: [] });
    const res = await pushManifest('acme/app', sha256Digest(Buffer.from('other')), manifest);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('DIGEST_INVALID');
    const ok = await pushManifest('acme/app', sha512Digest(manifest), manifest);
    expect(ok.status).toBe(201);
    expect(ok.headers.get('docker-content-digest')).toBe(sha512Digest(manifest));
  });

  it('answers 413 for a manifest above the configured limit', async () => {
    const config = testBlob('{}');
    await pushBlob('acme/app', config);
    const manifest = imageManifest({ config, layers: [], annotations: { pad: 'x'.repeat(5000) } });
    const res = await pushManifest('acme/app', 'huge', manifest);
    expect(res.status).toBe(413);
    expect((await call('GET', '/v2/acme/app/manifests/huge')).status).toBe(404);
  });

  it('answers MANIFEST_UNKNOWN for an unknown tag', async () => {
    const res = await call('GET', '/v2/acme/app/manifests/nope');
    expect(res.status).toBe(404);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('MANIFEST_UNKNOWN');
  });
});

describe('tag listing', () => {
  it('lists tags sorted, paginated with n/last and a Link to the next page', async () => {
    const { manifest } = await pushImage('acme/app', 'b', 'x');
    for (const tag of ['d', 'a', 'c', 'e']) {
      expect((await pushManifest('acme/app', tag, manifest)).status).toBe(201);
    }
    const all = await call('GET', '/v2/acme/app/tags/list');
    expect(await all.json()).toEqual({ name: 'acme/app', tags: ['a', 'b', 'c', 'd', 'e'] });

    const pages: string[][] = [];
    let next: string | null = '/v2/acme/app/tags/list?n=2';
    while (next !== null) {
      const res = await call('GET', next);
      pages.push(((await res.json()) as { tags: string[] }).tags);
      const link = res.headers.get('link');
      next = link === null ? null : (/^<([^>]+)>; rel="next"$/.exec(link)?.[1] ?? null);
    }
    expect(pages).toEqual([['a', 'b'], ['c', 'd'], ['e']]);

    const after = await call('GET', '/v2/acme/app/tags/list?last=c');
    expect(((await after.json()) as { tags: string[] }).tags).toEqual(['d', 'e']);
  });

  it('answers NAME_UNKNOWN for a repository that does not exist', async () => {
    const res = await call('GET', '/v2/acme/app/tags/list');
    expect(res.status).toBe(404);
    const body = (await res.json()) as { errors: { code: string }[] };
    expect(body.errors[0]?.code).toBe('NAME_UNKNOWN');
  });
});

describe('referrers', () => {
  it('lists manifests whose subject is a digest, filtered by artifactType', async () => {
    const subject = await pushImage('acme/app', 'v1', 'subject');
    const empty = testBlob('{}');
    await pushBlob('acme/app', empty);
    const sbomLayer = testBlob('sbom contents');
    await pushBlob('acme/app', sbomLayer);
    const sbom = imageManifest({
      config: empty,
      configMediaType: 'application/vnd.oci.empty.v1+json',
      layers: [sbomLayer],
      artifactType: 'application/vnd.example.sbom',
      subject: { digest: subject.digest, size: subject.manifest.length },
      annotations: { 'org.example.kind': 'sbom' },
    });
    const sig = imageManifest({
      config: testBlob('{}'),
      configMediaType: 'application/vnd.example.sig.config',
      layers: [],
      subject: { digest: subject.digest, size: subject.manifest.length },
    });
    const putSbom = await pushManifest('acme/app', sha256Digest(sbom), sbom);
    expect(putSbom.status).toBe(201);
    expect(putSbom.headers.get('oci-subject')).toBe(subject.digest);
    expect((await pushManifest('acme/app', sha256Digest(sig), sig)).status).toBe(201);

    const all = await call('GET', `/v2/acme/app/referrers/${subject.digest}`);
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');
    const index = (await all.json()) as {
      manifests: { digest: string; artifactType: string; annotations?: Record<string, string> }[];
    };
    expect(index.manifests.map((m) => [m.digest, m.artifactType]).sort()).toEqual(
      [
        [sha256Digest(sbom), 'application/vnd.example.sbom'],
        [sha256Digest(sig), 'application/vnd.example.sig.config'],
      ].sort(),
    );
    expect(index.manifests.find((m) => m.digest === sha256Digest(sbom))?.annotations).toEqual({
      'org.example.kind': 'sbom',
    });

    const filtered = await call(
      'GET',
      `/v2/acme/app/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`,
    );
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
    const fIndex = (await filtered.json()) as { manifests: { digest: string }[] };
    expect(fIndex.manifests.map((m) => m.digest)).toEqual([sha256Digest(sbom)]);

    const none = await call(
      'GET',
      `/v2/acme/app/referrers/${sha256Digest(Buffer.from('no referrers'))}`,
    );
    expect(none.status).toBe(200);
    expect(((await none.json()) as { manifests: unknown[] }).manifests).toEqual([]);
  });
});

describe('deletes', () => {
  it('deletes a tag, then the manifest by digest, then a blob link', async () => {
    const { digest, layer } = await pushImage('acme/app', 'v1', 'del');
    await pushManifest('acme/app', 'v2', (await pushImage('acme/app', 'tmp', 'del')).manifest);

    expect((await call('DELETE', '/v2/acme/app/manifests/v1')).status).toBe(202);
    expect((await call('GET', '/v2/acme/app/manifests/v1')).status).toBe(404);
    expect((await call('GET', `/v2/acme/app/manifests/${digest}`)).status).toBe(200);

    expect((await call('DELETE', `/v2/acme/app/manifests/${digest}`)).status).toBe(202);
    expect((await call('GET', `/v2/acme/app/manifests/${digest}`)).status).toBe(404);
    expect((await call('GET', '/v2/acme/app/manifests/v2')).status).toBe(404);
    expect((await call('DELETE', `/v2/acme/app/manifests/${digest}`)).status).toBe(404);

    expect((await call('DELETE', `/v2/acme/app/blobs/${layer.digest}`)).status).toBe(202);
    const gone = await call('GET', `/v2/acme/app/blobs/${layer.digest}`);
    expect(gone.status).toBe(404);
    expect((await call('DELETE', `/v2/acme/app/blobs/${layer.digest}`)).status).toBe(404);
  });
});

describe('persistence and crash safety', () => {
  it('keeps blobs, manifests, tags and an open upload across a restart', async () => {
    const { digest, layer } = await pushImage('acme/app', 'v1', 'persist');
    const data = Buffer.from('resumed after a restart');
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    await call('PATCH', loc, { body: data.subarray(0, 8), headers: { 'content-range': '0-7' } });

    await h.restart();

    expect(
      (await call('GET', '/v2/acme/app/manifests/v1')).headers.get('docker-content-digest'),
    ).toBe(digest);
    expect(await (await call('GET', `/v2/acme/app/blobs/${layer.digest}`)).text()).toBe(
      layer.bytes.toString(),
    );
    expect((await call('GET', loc)).headers.get('range')).toBe('0-7');
    await call('PATCH', loc, {
      body: data.subarray(8),
      headers: { 'content-range': `8-${data.length - 1}` },
    });
    expect((await call('PUT', `${loc}?digest=${sha256Digest(data)}`)).status).toBe(201);
  });

  it('resumes from the reported offset after a crash left more bytes on disk than recorded', async () => {
    const data = Buffer.from('recorded-part|resent-after-the-crash');
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    const id = loc.split('/').pop()!;
    await call('PATCH', loc, { body: data.subarray(0, 14), headers: { 'content-range': '0-13' } });
    // kill -9 mid-PATCH: the next chunk's bytes reached the file, its size never the row.
    const file = path.join(h.dataDir, 'registry', 'uploads', id);
    await appendFile(file, data.subarray(14, 30));
    expect((await stat(file)).size).toBe(30);

    await h.restart();

    expect((await stat(file)).size).toBe(14);
    const status = await call('GET', loc);
    expect(status.headers.get('range')).toBe('0-13');
    const resumed = await call('PATCH', loc, {
      body: data.subarray(14),
      headers: { 'content-range': `14-${data.length - 1}` },
    });
    expect(resumed.status).toBe(202);
    expect((await call('PUT', `${loc}?digest=${sha256Digest(data)}`)).status).toBe(201);
  });

  it('reports the bytes actually on disk when a crash lost the tail of an upload', async () => {
    const data = Buffer.from('kept|lost-in-the-crash|resent');
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    const id = loc.split('/').pop()!;
    await call('PATCH', loc, { body: data.subarray(0, 22), headers: { 'content-range': '0-21' } });
    await truncate(path.join(h.dataDir, 'registry', 'uploads', id), 4);

    await h.restart();

    expect((await call('GET', loc)).headers.get('range')).toBe('0-3');
    await call('PATCH', loc, {
      body: data.subarray(4),
      headers: { 'content-range': `4-${data.length - 1}` },
    });
    expect((await call('PUT', `${loc}?digest=${sha256Digest(data)}`)).status).toBe(201);
  });

  it('cuts an interrupted chunk back so the session resumes at the last complete byte', async () => {
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    await call('PATCH', loc, { body: 'firstpart', headers: { 'content-range': '0-8' } });
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: h.port,
        path: loc,
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${token}`,
          'content-length': '1000',
          'content-range': '9-1008',
        },
      });
      req.on('error', () => {
        resolve();
      });
      req.write(Buffer.alloc(300, 1), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50);
      });
    });
    // The aborted request holds the session until its stream has failed and been cut back;
    // until then further requests on the session answer 409.
    let resumed = await call('PATCH', loc, {
      body: '-second',
      headers: { 'content-range': '9-15' },
    });
    for (let i = 0; i < 100 && resumed.status === 409; i++) {
      await new Promise((r) => setTimeout(r, 20));
      resumed = await call('PATCH', loc, { body: '-second', headers: { 'content-range': '9-15' } });
    }
    expect(resumed.status).toBe(202);
    expect(resumed.headers.get('range')).toBe('0-15');
    const data = Buffer.from('firstpart-second');
    expect((await call('PUT', `${loc}?digest=${sha256Digest(data)}`)).status).toBe(201);
  });

  it('leaves nothing behind when a monolithic upload is cut off mid-body', async () => {
    const content = Buffer.alloc(4096, 7);
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: h.port,
        path: `/v2/acme/app/blobs/uploads/?digest=${sha256Digest(content)}`,
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-length': String(content.length) },
      });
      req.on('error', () => {
        resolve();
      });
      req.write(content.subarray(0, 1000), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50);
      });
    });
    let files: string[] = ['pending'];
    for (let i = 0; i < 100 && files.length > 0; i++) {
      files = await readdir(path.join(h.dataDir, 'registry', 'uploads'));
      if (files.length > 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(files).toEqual([]);
    expect((await call('HEAD', `/v2/acme/app/blobs/${sha256Digest(content)}`)).status).toBe(404);
  });

  it('never exposes a half-written upload file and removes it at the next start', async () => {
    const content = Buffer.from('a blob that was never completed');
    const orphan = path.join(
      h.dataDir,
      'registry',
      'uploads',
      '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
    );
    await writeFile(orphan, content.subarray(0, 10));
    expect((await call('HEAD', `/v2/acme/app/blobs/${sha256Digest(content)}`)).status).toBe(404);
    await h.restart();
    expect(await readdir(path.join(h.dataDir, 'registry', 'uploads'))).toEqual([]);
    expect((await call('HEAD', `/v2/acme/app/blobs/${sha256Digest(content)}`)).status).toBe(404);
  });

  it('expires idle upload sessions by the clock and removes their files', async () => {
    const loc = uploadPath(await call('POST', '/v2/acme/app/blobs/uploads/'));
    await call('PATCH', loc, { body: 'stale' });
    expect(await readdir(path.join(h.dataDir, 'registry', 'uploads'))).toHaveLength(1);
    h.clock.advance((h.config.registry.uploadSessionTtlSeconds + 1) * 1000);
    token = await h.buildToken({ id: 'b_protocol', tenant: 'acme', repository: 'acme/app' });
    const expired = await call('GET', loc);
    expect(expired.status).toBe(404);
    await h.restart();
    expect(await readdir(path.join(h.dataDir, 'registry', 'uploads'))).toEqual([]);
  });
});
