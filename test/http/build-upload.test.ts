import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { gzip, sampleTar, tarArchive, zstd } from '../helpers/tar-builder.js';

let h: Harness;

beforeEach(async () => {
  h = await createHarness({
    env: {
      KILN_MAX_SOURCE_BYTES: '64K',
      KILN_MAX_UNPACKED_BYTES: '32K',
      KILN_MAX_SOURCE_ENTRIES: '10',
      KILN_MAX_PATH_BYTES: '64',
    },
  });
});
afterEach(async () => {
  await h.close();
});

function form(
  source: Buffer | null,
  fields: Record<string, string> = {},
  name = 'source',
): FormData {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  if (source) fd.append(name, new Blob([source]), 'app.tar');
  return fd;
}

async function post(body: FormData | string, token?: string, headers: Record<string, string> = {}) {
  return h.app.request('/builds', {
    method: 'POST',
    body,
    headers: { authorization: `Bearer ${token ?? (await h.token('acme'))}`, ...headers },
  });
}

async function expectRejected(res: Response, status: number, code: string): Promise<void> {
  const body = (await res.json()) as { error: { code: string } };
  expect({ status: res.status, code: body.error.code }).toEqual({ status, code });
  expect(h.buildDirs()).toEqual([]);
  expect(h.buildRows()).toBe(0);
}

describe('POST /builds', () => {
  it('accepts a plain tar with 202, Location and the recorded source', async () => {
    const tar = sampleTar();
    const res = await post(form(tar, { image_name: 'web', cache_scope: 'main' }));
    expect(res.status).toBe(202);
    const build = (await res.json()) as Record<string, unknown> & { id: string };
    expect(res.headers.get('location')).toBe(`/builds/${build.id}`);
    expect(build.id).toMatch(/^b_[a-z2-7]{20}$/);
    expect(build).toMatchObject({
      tenant: 'acme',
      status: 'booting',
      repository: 'acme/web',
      tags: [build.id, 'latest'],
      cache_repository: 'cache/acme/main',
      source: {
        size_bytes: tar.length,
        sha256: createHash('sha256').update(tar).digest('hex'),
        compression: 'none',
        entries: 5,
        unpacked_bytes: 'FROM scratch\nCOPY hello.txt /\n'.length + 'hello\n'.length,
      },
    });
    const stored = h.store.get(build.id);
    expect(stored?.source.path).toBe(`${h.dataDir}/builds/${build.id}/source`);
    expect(existsSync(stored!.source.path)).toBe(true);
    expect(h.buildDirs()).toEqual([build.id]);
  });

  it('names the repository after the build id and tags only the id without image_name', async () => {
    const res = await post(form(sampleTar()));
    const build = (await res.json()) as { id: string; repository: string; tags: string[] };
    expect(build.repository).toBe(`acme/${build.id}`);
    expect(build.tags).toEqual([build.id]);
  });

  it('pushes every image_tags entry: the first name is its repository, all are listed', async () => {
    const res = await post(
      form(sampleTar(), { image_tags: '["web:v1", "team/api:v1", "web", "web:v1"]' }),
    );
    expect(res.status).toBe(202);
    const build = (await res.json()) as {
      id: string;
      repository: string;
      tags: string[];
      request: Record<string, unknown>;
    };
    expect(build.repository).toBe('acme/web');
    expect(build.tags).toEqual([build.id, 'v1', 'latest']);
    expect(build.request).toMatchObject({
      image_name: null,
      image_tags: ['web:v1', 'team/api:v1', 'web:latest'],
    });
  });

  it('detects gzip and zstd by magic number', async () => {
    const gz = (await (await post(form(gzip(sampleTar())))).json()) as {
      source: { compression: string };
    };
    const zs = (await (await post(form(zstd(sampleTar())))).json()) as {
      source: { compression: string };
    };
    expect([gz.source.compression, zs.source.compression]).toEqual(['gzip', 'zstd']);
  });

  it('applies defaults and accepts every documented field', async () => {
    h.secrets.put('acme', 'npm_token', 's3cret');
    const res = await post(
      form(sampleTar(), {
        dockerfile: 'FROM scratch',
        dockerfile_path: './docker/Dockerfile',
        context_dir: 'app',
        build_args: '{"A":"1"}',
        secrets: '["npm_token"]',
        timeout_seconds: '60',
        memory_mb: '1024',
        cpus: '1',
        network_mode: 'egress',
        source_sha256: createHash('sha256').update(sampleTar()).digest('hex'),
      }),
    );
    expect(res.status).toBe(202);
    const build = (await res.json()) as { request: Record<string, unknown> };
    expect(build.request).toEqual({
      dockerfile: 'FROM scratch',
      dockerfile_path: 'docker/Dockerfile',
      context_dir: 'app',
      build_args: { A: '1' },
      secrets: ['npm_token'],
      build_secrets: [],
      cache_scope: null,
      timeout_seconds: 60,
      memory_mb: 1024,
      cpus: 1,
      network_mode: 'egress',
      allowed_hosts: null,
      image_name: null,
      image_tags: null,
      engine: null,
    });
  });

  it("stores an egress build's allowed_hosts normalised, whichever field comes first", async () => {
    for (const order of [
      ['allowed_hosts', 'network_mode'],
      ['network_mode', 'allowed_hosts'],
    ]) {
      const values: Record<string, string> = {
        allowed_hosts: '["Registry.NPMjs.org.", "*.Example.com"]',
        network_mode: 'egress',
      };
      const res = await post(
        form(sampleTar(), Object.fromEntries(order.map((k) => [k, values[k]!]))),
      );
      expect(res.status).toBe(202);
      const build = (await res.json()) as { id: string; request: Record<string, unknown> };
      expect(build.request.allowed_hosts).toEqual(['registry.npmjs.org', '*.example.com']);
      expect(h.store.get(build.id)?.request.allowedHosts).toEqual([
        'registry.npmjs.org',
        '*.example.com',
      ]);
    }
  });

  describe('rejections leave no file, no directory and no row', () => {
    it('415 NOT_MULTIPART for a JSON body', async () => {
      await expectRejected(
        await post('{}', undefined, { 'content-type': 'application/json' }),
        415,
        'NOT_MULTIPART',
      );
    });
    it('400 SOURCE_MISSING without a source part', async () => {
      await expectRejected(await post(form(null, { image_name: 'web' })), 400, 'SOURCE_MISSING');
    });
    it('400 SOURCE_MISSING when source is a text field', async () => {
      const fd = new FormData();
      fd.append('source', 'not a file');
      await expectRejected(await post(fd), 400, 'SOURCE_MISSING');
    });
    it('400 SOURCE_DUPLICATE for two source files', async () => {
      const fd = form(sampleTar());
      fd.append('source', new Blob([sampleTar()]), 'b.tar');
      await expectRejected(await post(fd), 400, 'SOURCE_DUPLICATE');
    });
    it('400 BAD_REQUEST for a multipart body cut off inside the file part', async () => {
      const head =
        '--xyz\r\nContent-Disposition: form-data; name="source"; filename="a.tar"\r\n\r\n';
      const body = Buffer.concat([Buffer.from(head), sampleTar().subarray(0, 1500)]);
      await expectRejected(
        await post(body.toString('latin1'), undefined, {
          'content-type': 'multipart/form-data; boundary=xyz',
        }),
        400,
        'BAD_REQUEST',
      );
    });
    it('415 NOT_MULTIPART for multipart without a boundary', async () => {
      await expectRejected(
        await post('x', undefined, { 'content-type': 'multipart/form-data; charset=utf-8' }),
        415,
        'NOT_MULTIPART',
      );
    });
    it('400 UNKNOWN_FIELD for an unknown field', async () => {
      await expectRejected(await post(form(sampleTar(), { colour: 'red' })), 400, 'UNKNOWN_FIELD');
    });
    it('400 UNKNOWN_FIELD for a file under another name', async () => {
      await expectRejected(await post(form(sampleTar(), {}, 'archive')), 400, 'UNKNOWN_FIELD');
    });
    it('400 DUPLICATE_FIELD for a field sent twice', async () => {
      const fd = form(sampleTar(), { cpus: '1' });
      fd.append('cpus', '2');
      await expectRejected(await post(fd), 400, 'DUPLICATE_FIELD');
    });
    it('400 INVALID_FIELD for malformed build_args', async () => {
      await expectRejected(
        await post(form(sampleTar(), { build_args: '[1' })),
        400,
        'INVALID_FIELD',
      );
    });
    it('400 INVALID_FIELD for a context_dir leaving the source', async () => {
      await expectRejected(
        await post(form(sampleTar(), { context_dir: '../x' })),
        400,
        'INVALID_FIELD',
      );
    });
    it('400 SOURCE_SHA256_MISMATCH when the digest differs', async () => {
      await expectRejected(
        await post(form(sampleTar(), { source_sha256: '0'.repeat(64) })),
        400,
        'SOURCE_SHA256_MISMATCH',
      );
    });
    it('413 SOURCE_TOO_LARGE over the compressed limit', async () => {
      const big = tarArchive({ name: 'a', content: Buffer.alloc(70 * 1024, 1) });
      await expectRejected(await post(form(big)), 413, 'SOURCE_TOO_LARGE');
    });
    it('413 SOURCE_UNPACKED_TOO_LARGE over the unpacked limit (gzip bomb)', async () => {
      const bomb = gzip(tarArchive({ name: 'zeros', content: Buffer.alloc(40 * 1024) }));
      expect(bomb.length).toBeLessThan(64 * 1024);
      await expectRejected(await post(form(bomb)), 413, 'SOURCE_UNPACKED_TOO_LARGE');
    });
    it('413 SOURCE_TOO_MANY_ENTRIES over the entry limit', async () => {
      const many = tarArchive(
        ...Array.from({ length: 11 }, (_, i) => ({ name: `f${i}`, content: 'x' })),
      );
      await expectRejected(await post(form(many)), 413, 'SOURCE_TOO_MANY_ENTRIES');
    });
    it('400 SOURCE_PATH_TOO_LONG over the path limit', async () => {
      await expectRejected(
        await post(form(tarArchive({ name: `${'d/'.repeat(40)}f`, content: 'x' }))),
        400,
        'SOURCE_PATH_TOO_LONG',
      );
    });
    it('400 SOURCE_UNSAFE_PATH for ../ and absolute names', async () => {
      await expectRejected(
        await post(form(tarArchive({ name: '../etc/passwd', content: 'x' }))),
        400,
        'SOURCE_UNSAFE_PATH',
      );
      await expectRejected(
        await post(form(tarArchive({ name: '/etc/passwd', content: 'x' }))),
        400,
        'SOURCE_UNSAFE_PATH',
      );
    });
    it('400 SOURCE_FORBIDDEN_ENTRY for device nodes and fifos', async () => {
      for (const type of ['3', '4', '6'] as const) {
        await expectRejected(
          await post(form(tarArchive({ name: 'dev', type }))),
          400,
          'SOURCE_FORBIDDEN_ENTRY',
        );
      }
    });
    it('400 SOURCE_BAD_LINK for a hardlink to a later or missing entry', async () => {
      await expectRejected(
        await post(
          form(tarArchive({ name: 'h', type: '1', linkName: 'f' }, { name: 'f', content: 'x' })),
        ),
        400,
        'SOURCE_BAD_LINK',
      );
    });
    it('400 SOURCE_NOT_ARCHIVE for a text file', async () => {
      await expectRejected(
        await post(form(Buffer.from('just some text, not a tar archive\n'.repeat(30)))),
        400,
        'SOURCE_NOT_ARCHIVE',
      );
    });
    it('400 SOURCE_CORRUPT for a truncated tar, gzip and zstd', async () => {
      const tar = tarArchive({ name: 'f', content: Buffer.alloc(4000, 7) });
      await expectRejected(await post(form(tar.subarray(0, 3000))), 400, 'SOURCE_CORRUPT');
      const gz = gzip(tar);
      await expectRejected(await post(form(gz.subarray(0, gz.length - 20))), 400, 'SOURCE_CORRUPT');
      const zs = zstd(tar);
      await expectRejected(await post(form(zs.subarray(0, zs.length - 10))), 400, 'SOURCE_CORRUPT');
    });
    it('400 SOURCE_CORRUPT for a corrupt gzip stream', async () => {
      const gz = gzip(tarArchive({ name: 'f', content: Buffer.alloc(4000, 7) }));
      gz.fill(0x55, 20, 40);
      await expectRejected(await post(form(gz)), 400, 'SOURCE_CORRUPT');
    });
    it('400 INVALID_IMAGE_NAME for a name outside the OCI grammar', async () => {
      for (const image_name of ['Web', 'web//x', '-web', 'web_']) {
        await expectRejected(
          await post(form(sampleTar(), { image_name })),
          400,
          'INVALID_IMAGE_NAME',
        );
      }
    });
    it('400 INVALID_IMAGE_TAGS for a bad entry, too many, or image_name beside it', async () => {
      const many = JSON.stringify(Array.from({ length: 17 }, (_, i) => `web:v${i}`));
      const cases: Record<string, string>[] = [
        { image_tags: '["web:-bad"]' },
        { image_tags: '["Web:v1"]' },
        { image_tags: '[]' },
        { image_tags: many },
        { image_tags: '["web:v1"]', image_name: 'web' },
      ];
      for (const fields of cases) {
        await expectRejected(await post(form(sampleTar(), fields)), 400, 'INVALID_IMAGE_TAGS');
      }
    });
    it('400 INVALID_CACHE_SCOPE for a multi-component or bad scope', async () => {
      for (const cache_scope of ['a/b', 'A', '']) {
        await expectRejected(
          await post(form(sampleTar(), { cache_scope })),
          400,
          'INVALID_CACHE_SCOPE',
        );
      }
    });
    it('checks cache_size_mb: within 256 MiB and the operator ceiling', async () => {
      await expectRejected(
        await post(form(sampleTar(), { cache_size_mb: 'big' })),
        400,
        'INVALID_FIELD',
      );
      for (const cache_size_mb of ['100', String(50 * 1024 + 1)]) {
        await expectRejected(
          await post(form(sampleTar(), { cache_scope: 'main', cache_size_mb })),
          400,
          'RESOURCE_OUT_OF_RANGE',
        );
      }
      const res = await post(form(sampleTar(), { cache_scope: 'main', cache_size_mb: '1024' }));
      expect(res.status).toBe(202);
    });
    it('400 INVALID_NETWORK_MODE for an unknown mode', async () => {
      await expectRejected(
        await post(form(sampleTar(), { network_mode: 'host' })),
        400,
        'INVALID_NETWORK_MODE',
      );
    });
    it('400 INVALID_ENGINE for a name that is no engine', async () => {
      await expectRejected(
        await post(form(sampleTar(), { engine: 'docker' })),
        400,
        'INVALID_ENGINE',
      );
    });
    it('400 INVALID_FIELD for allowed_hosts without network_mode=egress', async () => {
      await expectRejected(
        await post(form(sampleTar(), { allowed_hosts: '["example.com"]' })),
        400,
        'INVALID_FIELD',
      );
      await expectRejected(
        await post(
          form(sampleTar(), { network_mode: 'isolated', allowed_hosts: '["example.com"]' }),
        ),
        400,
        'INVALID_FIELD',
      );
    });
    it('400 INVALID_ALLOWED_HOSTS for a non-array, a non-string or an invalid pattern', async () => {
      for (const allowed_hosts of ['"example.com"', '[1]', '["exa mple.com"]', '["*.*.com"]']) {
        await expectRejected(
          await post(form(sampleTar(), { network_mode: 'egress', allowed_hosts })),
          400,
          'INVALID_ALLOWED_HOSTS',
        );
      }
    });
    it('403 ALLOWED_HOSTS_NOT_PERMITTED for a list beyond the operator ceiling', async () => {
      await h.close();
      h = await createHarness({ env: { KILN_EGRESS_HOSTS_CEILING: '*.example.com' } });
      await expectRejected(
        await post(
          form(sampleTar(), {
            network_mode: 'egress',
            allowed_hosts: '["a.example.com", "evil.test"]',
          }),
        ),
        403,
        'ALLOWED_HOSTS_NOT_PERMITTED',
      );
    });
    it('400 RESOURCE_OUT_OF_RANGE for memory, cpus and timeout out of range', async () => {
      const cases: Record<string, string>[] = [
        { memory_mb: '64' },
        { cpus: '99' },
        { timeout_seconds: '999999' },
      ];
      for (const fields of cases) {
        await expectRejected(await post(form(sampleTar(), fields)), 400, 'RESOURCE_OUT_OF_RANGE');
      }
    });
    it('400 RESOURCE_OUT_OF_RANGE for a bad field sent after the source', async () => {
      const fd = form(sampleTar());
      fd.append('cpus', '99');
      await expectRejected(await post(fd), 400, 'RESOURCE_OUT_OF_RANGE');
    });
    it('400 UNKNOWN_SECRET for a secret the tenant does not have', async () => {
      h.secrets.put('other', 'npm_token', 'x');
      await expectRejected(
        await post(form(sampleTar(), { secrets: '["npm_token"]' })),
        400,
        'UNKNOWN_SECRET',
      );
    });
  });

  describe('auth', () => {
    it('answers 401 UNAUTHENTICATED without a token', async () => {
      const res = await h.app.request('/builds', { method: 'POST', body: form(sampleTar()) });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      expect(h.buildDirs()).toEqual([]);
    });
    it('answers 403 INSUFFICIENT_SCOPE with a read-only token', async () => {
      const token = await h.token('acme', ['builds:read']);
      await expectRejected(await post(form(sampleTar()), token), 403, 'INSUFFICIENT_SCOPE');
    });
    it('refuses a registry-audience token signed with the registry key', async () => {
      const { SignJWT } = await import('jose');
      const forged = await new SignJWT({ scope: 'builds:write builds:read' })
        .setProtectedHeader({ alg: 'ES256', kid: h.keys.registry.kid })
        .setIssuer('kiln')
        .setAudience('kiln')
        .setSubject('tenant:acme')
        .setJti('x')
        .setIssuedAt(Math.floor(h.time.now().getTime() / 1000))
        .setExpirationTime(Math.floor(h.time.now().getTime() / 1000) + 600)
        .sign(h.keys.registry.privateKey);
      await expectRejected(await post(form(sampleTar()), forged), 401, 'INVALID_TOKEN');
    });
  });

  it('answers 429 TENANT_QUEUE_FULL past the per-tenant queue cap, leaving nothing behind', async () => {
    await h.close();
    h = await createHarness({
      env: { KILN_MAX_QUEUED_PER_TENANT: '1', KILN_MAX_CONCURRENT_BUILDS: '1' },
    });
    expect((await post(form(sampleTar()))).status).toBe(202);
    expect((await post(form(sampleTar()))).status).toBe(202);
    const res = await post(form(sampleTar()));
    expect(res.status).toBe(429);
    expect(h.buildDirs()).toHaveLength(2);
    expect(h.buildRows()).toBe(2);
  });
});

describe('POST /builds engine, against the guest image of the host', () => {
  let imageDir: string;
  let g: Harness;

  beforeEach(async () => {
    imageDir = mkdtempSync(path.join(tmpdir(), 'kiln-image-'));
    writeFileSync(path.join(imageDir, 'image.json'), JSON.stringify({ engines: ['buildah'] }));
    g = await createHarness({ env: { KILN_IMAGE_DIR: imageDir } });
  });
  afterEach(async () => {
    await g.close();
    rmSync(imageDir, { recursive: true, force: true });
  });

  async function submit(fields: Record<string, string>): Promise<Response> {
    return g.app.request('/builds', {
      method: 'POST',
      body: form(sampleTar(), fields),
      headers: { authorization: `Bearer ${await g.token('acme')}` },
    });
  }

  it('defaults to the best engine the image has and records it in the build view', async () => {
    const res = await submit({});
    expect(res.status).toBe(202);
    const build = (await res.json()) as { request: { engine: string | null } };
    expect(build.request.engine).toBe('buildah');
    const asked = await submit({ engine: 'buildah' });
    expect(asked.status).toBe(202);
  });

  it('400 ENGINE_UNAVAILABLE, naming what the image has, for an engine it lacks', async () => {
    const res = await submit({ engine: 'buildkit' });
    const body = (await res.json()) as {
      error: { code: string; message: string; details: Record<string, unknown> };
    };
    expect({ status: res.status, code: body.error.code }).toEqual({
      status: 400,
      code: 'ENGINE_UNAVAILABLE',
    });
    expect(body.error.message).toContain('it has: buildah');
    expect(body.error.details).toMatchObject({ engine: 'buildkit', available: ['buildah'] });
    expect(g.buildDirs()).toEqual([]);
    expect(g.buildRows()).toBe(0);
  });
});
