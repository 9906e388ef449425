import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BUILD_TOKEN_MARGIN_SECONDS } from '../../src/registry/build-token-service.js';
import { runClient } from '../helpers/registry-clients.js';
import {
  forgedRegistryClaims,
  signedByForeignKey,
  signedHs256WithPublicKey,
  unsignedToken,
} from '../helpers/registry-forged-tokens.js';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { writeOciLayout, type OciLayout } from '../helpers/registry-oci-layout.js';
import { skopeoPull } from '../helpers/skopeo-pull.js';

let tmp: string;
let layout: OciLayout;
let h: RegistryHarness;
let authFile: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kiln-registry-clients-'));
  layout = await writeOciLayout(path.join(tmp, 'image'), {
    hello: '#!/bin/sh\necho hello from kiln\n',
    'etc/motd': 'built by a test\n',
  });
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  h = await RegistryHarness.start();
  authFile = path.join(await mkdtemp(path.join(tmp, 'auth-')), 'auth.json');
  await writeFile(authFile, '{}');
});

afterEach(async () => {
  await h.close();
});

function skopeoPush(creds: string, target: string) {
  return runClient('skopeo', [
    'copy',
    '--authfile',
    authFile,
    '--dest-tls-verify=false',
    '--dest-creds',
    `kiln:${creds}`,
    `oci:${layout.dir}:latest`,
    `docker://${h.host}/${target}`,
  ]);
}

async function blobFile(dir: string, digest: string): Promise<Buffer> {
  return readFile(path.join(dir, digest.replace(/^sha256:/, '')));
}

async function ociBlob(digest: string): Promise<Buffer> {
  return readFile(path.join(layout.dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}

async function manifestStatus(repo: string, tag: string): Promise<number> {
  const admin = await h.buildToken({ id: 'b_probe', tenant: 'probe', repository: repo });
  const res = await fetch(`${h.url}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { authorization: `Bearer ${admin}` },
  });
  return res.status;
}

describe('skopeo against the registry', () => {
  it('pushes with a build token, inspects, pulls back byte-identical, and deletes', async () => {
    const token = await h.buildToken({ id: 'b_sk', tenant: 'acme', repository: 'acme/web' });
    const push = await skopeoPush(token, 'acme/web:b_sk');
    expect(push.stderr).toBe('');
    expect(push.ok).toBe(true);

    const inspect = await runClient('skopeo', [
      'inspect',
      '--raw',
      '--authfile',
      authFile,
      '--tls-verify=false',
      '--creds',
      `kiln:${token}`,
      `docker://${h.host}/acme/web:b_sk`,
    ]);
    expect(inspect.ok).toBe(true);
    expect(Buffer.from(inspect.stdout)).toEqual(await ociBlob(layout.manifestDigest));

    const out = path.join(tmp, `pulled-${Date.now()}`);
    const pull = await skopeoPull(authFile, token, `docker://${h.host}/acme/web:b_sk`, out);
    expect(pull.ok).toBe(true);
    expect(await readFile(path.join(out, 'manifest.json'))).toEqual(
      await ociBlob(layout.manifestDigest),
    );
    expect(await blobFile(out, layout.layerDigest)).toEqual(await ociBlob(layout.layerDigest));
    expect(await blobFile(out, layout.configDigest)).toEqual(await ociBlob(layout.configDigest));

    const del = await runClient('skopeo', [
      'delete',
      '--authfile',
      authFile,
      '--tls-verify=false',
      '--creds',
      `kiln:${token}`,
      `docker://${h.host}/acme/web:b_sk`,
    ]);
    expect(del.ok).toBe(true);
    expect(await manifestStatus('acme/web', 'b_sk')).toBe(404);
  });

  it('lets an operator seed library/ with registry:admin and a build pull it', async () => {
    const admin = await h.apiToken('ops', ['registry:admin']);
    expect((await skopeoPush(admin, 'library/tiny:1')).ok).toBe(true);
    const build = await h.buildToken({ id: 'b_pull', tenant: 'acme', repository: 'acme/web' });
    const inspect = await runClient('skopeo', [
      'inspect',
      '--authfile',
      authFile,
      '--tls-verify=false',
      '--creds',
      `kiln:${build}`,
      `docker://${h.host}/library/tiny:1`,
    ]);
    expect(inspect.ok).toBe(true);
    expect((JSON.parse(inspect.stdout) as { Digest: string }).Digest).toBe(layout.manifestDigest);
  });

  describe('refuses pushes', () => {
    async function expectRefused(creds: string, target: string): Promise<void> {
      const run = await skopeoPush(creds, target);
      expect(run.ok).toBe(false);
      expect(run.stderr).toMatch(/unauthorized|denied|authentication required|401/i);
      const [repo = '', tag = ''] = target.split(':');
      expect(await manifestStatus(repo, tag)).toBe(404);
    }

    it("to another build's repository", async () => {
      await h.buildToken({ id: 'b_victim', tenant: 'acme', repository: 'acme/victim' });
      const attacker = await h.buildToken({ id: 'b_att', tenant: 'acme', repository: 'acme/att' });
      await expectRefused(attacker, 'acme/victim:x');
    });

    it("to another tenant's cache scope", async () => {
      const token = await h.buildToken({
        id: 'b_cache',
        tenant: 'acme',
        repository: 'acme/web',
        cacheRepository: 'cache/acme/main',
      });
      await expectRefused(token, 'cache/globex/main:x');
      expect((await skopeoPush(token, 'cache/acme/main:x')).ok).toBe(true);
    });

    it('with an expired token', async () => {
      const token = await h.buildToken({
        id: 'b_old',
        tenant: 'acme',
        repository: 'acme/web',
        timeoutSeconds: 60,
      });
      h.clock.advance((60 + BUILD_TOKEN_MARGIN_SECONDS + 1) * 1000);
      await expectRefused(token, 'acme/web:x');
    });

    it('with the token of a finished build', async () => {
      const token = await h.buildToken({ id: 'b_done', tenant: 'acme', repository: 'acme/web' });
      h.activity.active.delete('b_done');
      await expectRefused(token, 'acme/web:x');
    });

    it('with an API token', async () => {
      const api = await h.apiToken('acme', ['registry:pull', 'builds:write']);
      await expectRefused(api, 'acme/web:x');
    });

    it('with a token signed by a foreign key', async () => {
      h.activity.active.add('b_forge');
      const forged = await signedByForeignKey(h, forgedRegistryClaims(h, 'b_forge'));
      await expectRefused(forged, 'acme/web:x');
    });

    it('with an alg:none token', async () => {
      h.activity.active.add('b_forge');
      const none = unsignedToken({ alg: 'none' }, forgedRegistryClaims(h, 'b_forge'));
      await expectRefused(none, 'acme/web:x');
    });

    it('with an HS256 token signed with the public key', async () => {
      h.activity.active.add('b_forge');
      const hs = await signedHs256WithPublicKey(h, forgedRegistryClaims(h, 'b_forge'));
      await expectRefused(hs, 'acme/web:x');
    });
  });
});

describe('buildah against the registry', () => {
  it('pulls an image with a build token and pushes it to the build cache, byte-identical', async () => {
    const seedToken = await h.buildToken({ id: 'b_seed', tenant: 'acme', repository: 'acme/web' });
    expect((await skopeoPush(seedToken, 'acme/web:seed')).ok).toBe(true);
    const token = await h.buildToken({
      id: 'b_seed2',
      tenant: 'acme',
      repository: 'acme/web',
      cacheRepository: 'cache/acme/main',
    });
    const storage = await mkdtemp(path.join(tmp, 'buildah-'));
    const global = [
      '--root',
      path.join(storage, 'root'),
      '--runroot',
      path.join(storage, 'run'),
      '--storage-driver',
      'vfs',
    ];
    const buildah = (command: 'pull' | 'push', ...refs: string[]) =>
      runClient(
        'buildah',
        [...global, command, '--tls-verify=false', '--creds', `kiln:${token}`, ...refs],
        { REGISTRY_AUTH_FILE: authFile },
      );
    const pull = await buildah('pull', `docker://${h.host}/acme/web:seed`);
    expect(pull.stderr).not.toMatch(/error/i);
    expect(pull.ok).toBe(true);
    const push = await buildah(
      'push',
      `${h.host}/acme/web:seed`,
      `docker://${h.host}/cache/acme/main:layer`,
    );
    expect(push.ok).toBe(true);
    const refused = await buildah(
      'push',
      `${h.host}/acme/web:seed`,
      `docker://${h.host}/cache/globex/main:layer`,
    );
    expect(refused.ok).toBe(false);

    const out = path.join(tmp, `buildah-pulled-${Date.now()}`);
    const back = await skopeoPull(authFile, token, `docker://${h.host}/cache/acme/main:layer`, out);
    expect(back.ok).toBe(true);
    // buildah stores layers uncompressed and recompresses them on push, so the layer's
    // uncompressed bytes (its diff_id) are what must survive the round trip unchanged.
    const manifest = JSON.parse(await readFile(path.join(out, 'manifest.json'), 'utf8')) as {
      layers: { digest: string }[];
    };
    expect(manifest.layers).toHaveLength(1);
    const pushedLayer = await blobFile(out, manifest.layers[0]!.digest);
    const plain = (b: Buffer) => (b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b);
    expect(plain(pushedLayer)).toEqual(plain(await ociBlob(layout.layerDigest)));
    await rm(storage, { recursive: true, force: true });
  });
});
