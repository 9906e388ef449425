import { SignJWT, decodeJwt } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUILD_TOKEN_MARGIN_SECONDS } from '../../src/registry/build-token-service.js';
import {
  forgedRegistryClaims,
  signedByForeignKey,
  signedHs256WithPublicKey,
  unsignedToken,
} from '../helpers/registry-forged-tokens.js';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { testBlob } from '../helpers/registry-oci-content.js';

let h: RegistryHarness;

beforeEach(async () => {
  h = await RegistryHarness.start();
});

afterEach(async () => {
  await h.close();
});

interface TokenAnswer {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

async function getToken(password: string, query: string): Promise<Response> {
  return fetch(`${h.url}/v2/token?service=kiln&${query}`, {
    headers: { authorization: RegistryHarness.basic(password) },
  });
}

function accessOf(token: string): unknown {
  return decodeJwt(token).access;
}

async function status(method: string, path: string, auth: string, body?: Buffer): Promise<number> {
  const res = await fetch(`${h.url}${path}`, {
    method,
    headers: { authorization: auth },
    ...(body === undefined ? {} : { body }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('build tokens', () => {
  it('carry sub build:<id>, push+pull on the output and cache repositories, pull on library/* and mirror/*, for timeout plus margin', async () => {
    const token = await h.buildToken({
      id: 'b_claims',
      tenant: 'acme',
      repository: 'acme/web',
      cacheRepository: 'cache/acme/main',
      timeoutSeconds: 900,
    });
    const claims = decodeJwt(token);
    expect(claims.sub).toBe('build:b_claims');
    expect(claims.iss).toBe('kiln');
    expect(claims.aud).toBe('kiln');
    expect(claims.exp! - claims.iat!).toBe(900 + BUILD_TOKEN_MARGIN_SECONDS);
    expect(claims.access).toEqual([
      { type: 'repository', name: 'acme/web', actions: ['pull', 'push'] },
      { type: 'repository', name: 'cache/acme/main', actions: ['pull', 'push'] },
      { type: 'repository', name: 'library/*', actions: ['pull'] },
      { type: 'repository', name: 'mirror/*', actions: ['pull'] },
    ]);
  });

  it('carry push+pull on every repository image_tags names, and nothing on any other', async () => {
    const token = await h.buildToken({
      id: 'b_multi',
      tenant: 'acme',
      repository: 'acme/web',
      imageTags: [
        { name: 'web', tag: 'v1' },
        { name: 'team/api', tag: 'v1' },
        { name: 'web', tag: 'stable' },
      ],
    });
    expect(accessOf(token)).toEqual([
      { type: 'repository', name: 'acme/web', actions: ['pull', 'push'] },
      { type: 'repository', name: 'acme/team/api', actions: ['pull', 'push'] },
      { type: 'repository', name: 'library/*', actions: ['pull'] },
      { type: 'repository', name: 'mirror/*', actions: ['pull'] },
    ]);
    const exchanged = await h.exchange(token, [
      'repository:acme/team/api:pull,push',
      'repository:acme/other:pull,push',
    ]);
    expect(accessOf(exchanged)).toEqual([
      { type: 'repository', name: 'acme/team/api', actions: ['pull', 'push'] },
    ]);
    const auth = `Bearer ${token}`;
    expect(await status('POST', '/v2/acme/team/api/blobs/uploads/', auth)).toBe(202);
    expect(await status('POST', '/v2/acme/other/blobs/uploads/', auth)).toBe(401);
  });

  it('stop working the moment the build is no longer active, and so do tokens exchanged from them', async () => {
    const token = await h.buildToken({ id: 'b_end', tenant: 'acme', repository: 'acme/web' });
    const exchanged = await h.exchange(token, ['repository:acme/web:pull,push']);
    expect(await status('GET', '/v2/', `Bearer ${token}`)).toBe(200);
    expect(await status('GET', '/v2/', `Bearer ${exchanged}`)).toBe(200);
    h.activity.active.delete('b_end');
    expect(await status('GET', '/v2/', `Bearer ${token}`)).toBe(401);
    expect(await status('GET', '/v2/', `Bearer ${exchanged}`)).toBe(401);
    expect((await getToken(token, 'scope=repository:acme/web:pull')).status).toBe(401);
  });

  it('belong to one attempt: a re-run refuses every earlier token over Bearer, Basic and /v2/token', async () => {
    const build = { id: 'b_rerun', tenant: 'acme', repository: 'acme/web' };
    const first = await h.buildToken(build);
    const minted = await h.exchange(first, ['repository:acme/web:pull,push']);
    expect(decodeJwt(first).attempt).toBe(h.activity.attempt(build.id));
    expect(decodeJwt(minted).attempt).toBe(decodeJwt(first).attempt);
    expect(await status('GET', '/v2/', `Bearer ${minted}`)).toBe(200);

    // A restart re-runs the build: the dead VM's tokens must not push into the new run.
    h.activity.rerun(build.id);
    const second = await h.buildToken(build);
    for (const old of [first, minted]) {
      expect(await status('GET', '/v2/', `Bearer ${old}`)).toBe(401);
      expect(await status('GET', '/v2/', RegistryHarness.basic(old))).toBe(401);
      expect((await getToken(old, 'scope=repository:acme/web:pull')).status).toBe(401);
      const form = new URLSearchParams({
        grant_type: 'password',
        username: 'kiln',
        password: old,
        scope: 'repository:acme/web:pull,push',
      });
      const posted = await fetch(`${h.url}/v2/token`, { method: 'POST', body: form });
      expect(posted.status).toBe(401);
    }
    const blob = testBlob('pushed by the running attempt');
    expect(
      await status(
        'POST',
        `/v2/acme/web/blobs/uploads/?digest=${blob.digest}`,
        `Bearer ${second}`,
        blob.bytes,
      ),
    ).toBe(201);
    expect(
      await status(
        'POST',
        `/v2/acme/web/blobs/uploads/?digest=${blob.digest}`,
        `Bearer ${first}`,
        blob.bytes,
      ),
    ).toBe(401);
  });

  it('without an attempt claim are refused even while the build runs', async () => {
    h.activity.attempt('b_noattempt');
    const { token } = await h.tokens.sign(
      'build:b_noattempt',
      [{ type: 'repository', name: 'acme/web', actions: ['pull', 'push'] }],
      600,
    );
    expect(await status('GET', '/v2/', `Bearer ${token}`)).toBe(401);
  });

  it('are refused once expired by the injected clock', async () => {
    const token = await h.buildToken({
      id: 'b_exp',
      tenant: 'acme',
      repository: 'acme/web',
      timeoutSeconds: 60,
    });
    expect(await status('GET', '/v2/', `Bearer ${token}`)).toBe(200);
    h.clock.advance((60 + BUILD_TOKEN_MARGIN_SECONDS + 1) * 1000);
    expect(await status('GET', '/v2/', `Bearer ${token}`)).toBe(401);
  });
});

describe('token endpoint', () => {
  it('grants the intersection of repeated and space-separated scopes with what a build token allows', async () => {
    const token = await h.buildToken({
      id: 'b_tok',
      tenant: 'acme',
      repository: 'acme/web',
      cacheRepository: 'cache/acme/main',
      timeoutSeconds: 3600,
    });
    const res = await getToken(
      token,
      [
        'scope=' +
          encodeURIComponent('repository:acme/web:pull,push repository:acme/other:pull,push'),
        'scope=' + encodeURIComponent('repository:library/debian:pull,push'),
        'scope=' + encodeURIComponent('repository:cache/acme/main:push'),
        'scope=' + encodeURIComponent('repository:cache/globex/main:pull,push'),
      ].join('&'),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as TokenAnswer;
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(h.config.registry.tokenTtlSeconds);
    expect(body.issued_at).toBe(h.clock.now().toISOString());
    expect(accessOf(body.token)).toEqual([
      { type: 'repository', name: 'acme/web', actions: ['pull', 'push'] },
      { type: 'repository', name: 'library/debian', actions: ['pull'] },
      { type: 'repository', name: 'cache/acme/main', actions: ['push'] },
    ]);
  });

  it('answers an OAuth2 password grant POST as BuildKit sends it', async () => {
    const api = await h.apiToken('acme', ['registry:pull']);
    const res = await fetch(`${h.url}/v2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'someone',
        password: api,
        service: 'kiln',
        client_id: 'buildkit-client',
        scope: 'repository:acme/web:pull,push repository:globex/web:pull',
      }).toString(),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as TokenAnswer;
    expect(accessOf(body.access_token)).toEqual([
      { type: 'repository', name: 'acme/web', actions: ['pull'] },
    ]);
  });

  it('never hands out a token that outlives the build token it came from', async () => {
    const token = await h.buildToken({
      id: 'b_short',
      tenant: 'acme',
      repository: 'acme/web',
      timeoutSeconds: 10,
    });
    const res = await getToken(token, 'scope=repository:acme/web:pull');
    const body = (await res.json()) as TokenAnswer;
    expect(body.expires_in).toBe(10 + BUILD_TOKEN_MARGIN_SECONDS);
  });

  it('never hands out a token that outlives the API token it came from', async () => {
    const api = await h.apiToken('acme', ['registry:pull'], 60);
    const res = await getToken(api, 'scope=repository:acme/web:pull');
    const body = (await res.json()) as TokenAnswer;
    expect(body.expires_in).toBe(60);
  });

  it('answers 400 NAME_INVALID and grants nothing when a requested name is a glob or outside the grammar', async () => {
    const api = await h.apiToken('acme', ['registry:pull']);
    for (const name of ['acme/*', 'acme/../beta/app', 'acme-/app', 'Acme/web']) {
      const res = await getToken(
        api,
        'scope=' + encodeURIComponent(`repository:acme/web:pull repository:${name}:pull`),
      );
      expect(res.status, name).toBe(400);
      const body = (await res.json()) as {
        errors: { code: string; detail: unknown }[];
        token?: string;
      };
      expect(body.token).toBeUndefined();
      expect(body.errors[0]).toMatchObject({ code: 'NAME_INVALID', detail: { name } });
    }
    const ok = await getToken(api, 'scope=' + encodeURIComponent('repository:acme/web:pull'));
    expect(ok.status).toBe(200);
  });

  it('refuses missing and invalid credentials with 401', async () => {
    const anonymous = await fetch(`${h.url}/v2/token?service=kiln&scope=repository:acme/web:pull`);
    expect(anonymous.status).toBe(401);
    expect((await getToken('not-a-token', 'scope=repository:acme/web:pull')).status).toBe(401);
  });
});

describe('what each credential allows', () => {
  it('lets an API token with registry:pull pull its tenant repositories over Basic, and nothing more', async () => {
    const pusher = await h.buildToken({ id: 'b_src', tenant: 'acme', repository: 'acme/web' });
    const blob = testBlob('tenant layer');
    expect(
      await status(
        'POST',
        `/v2/acme/web/blobs/uploads/?digest=${blob.digest}`,
        `Bearer ${pusher}`,
        blob.bytes,
      ),
    ).toBe(201);

    const api = RegistryHarness.basic(await h.apiToken('acme', ['registry:pull']));
    expect(await status('GET', `/v2/acme/web/blobs/${blob.digest}`, api)).toBe(200);
    expect(await status('POST', '/v2/acme/web/blobs/uploads/', api)).toBe(401);
    const other = RegistryHarness.basic(await h.apiToken('globex', ['registry:pull']));
    expect(await status('GET', `/v2/acme/web/blobs/${blob.digest}`, other)).toBe(401);
    const noScope = RegistryHarness.basic(await h.apiToken('acme', ['builds:read']));
    expect(await status('GET', `/v2/acme/web/blobs/${blob.digest}`, noScope)).toBe(401);
  });

  it('lets registry:admin push library/* which every credential may then pull', async () => {
    const admin = RegistryHarness.basic(await h.apiToken('ops', ['registry:admin']));
    const blob = testBlob('base image layer');
    expect(
      await status(
        'POST',
        `/v2/library/debian/blobs/uploads/?digest=${blob.digest}`,
        admin,
        blob.bytes,
      ),
    ).toBe(201);
    const build = await h.buildToken({ id: 'b_base', tenant: 'acme', repository: 'acme/web' });
    expect(await status('GET', `/v2/library/debian/blobs/${blob.digest}`, `Bearer ${build}`)).toBe(
      200,
    );
    expect(await status('POST', '/v2/library/debian/blobs/uploads/', `Bearer ${build}`)).toBe(401);
    const tenantApi = RegistryHarness.basic(await h.apiToken('globex', ['builds:read']));
    expect(await status('GET', `/v2/library/debian/blobs/${blob.digest}`, tenantApi)).toBe(200);
    expect(await status('POST', '/v2/library/debian/blobs/uploads/', tenantApi)).toBe(401);
  });

  it('accepts a build token as the Basic password directly on /v2/*', async () => {
    const token = await h.buildToken({ id: 'b_basic', tenant: 'acme', repository: 'acme/web' });
    const basic = RegistryHarness.basic(token);
    expect(await status('POST', '/v2/acme/web/blobs/uploads/', basic)).toBe(202);
    expect(await status('POST', '/v2/acme/other/blobs/uploads/', basic)).toBe(401);
  });

  it('keeps a build out of another build repository and another tenant cache', async () => {
    const build = `Bearer ${await h.buildToken({ id: 'b_one', tenant: 'acme', repository: 'acme/one', cacheRepository: 'cache/acme/main' })}`;
    expect(await status('POST', '/v2/acme/one/blobs/uploads/', build)).toBe(202);
    expect(await status('POST', '/v2/cache/acme/main/blobs/uploads/', build)).toBe(202);
    expect(await status('POST', '/v2/acme/two/blobs/uploads/', build)).toBe(401);
    expect(await status('POST', '/v2/cache/globex/main/blobs/uploads/', build)).toBe(401);
    expect(await status('GET', '/v2/acme/two/tags/list', build)).toBe(401);
  });
});

describe('forged tokens', () => {
  const registryClaims = () => forgedRegistryClaims(h, 'b_forged');

  beforeEach(() => {
    h.activity.active.add('b_forged');
  });

  it('refuses a token signed by another ES256 key', async () => {
    const forged = await signedByForeignKey(h, registryClaims());
    expect(await status('POST', '/v2/acme/web/blobs/uploads/', `Bearer ${forged}`)).toBe(401);
  });

  it('refuses an unsigned alg:none token', async () => {
    const none = unsignedToken({ alg: 'none', typ: 'JWT' }, registryClaims());
    expect(await status('POST', '/v2/acme/web/blobs/uploads/', `Bearer ${none}`)).toBe(401);
  });

  it('refuses an HS256 token keyed with the registry public key', async () => {
    const hs = await signedHs256WithPublicKey(h, registryClaims());
    expect(await status('POST', '/v2/acme/web/blobs/uploads/', `Bearer ${hs}`)).toBe(401);
  });

  it('refuses a token signed with the API key even with the registry audience', async () => {
    const apiSigned = await new SignJWT(registryClaims())
      .setProtectedHeader({ alg: 'ES256', kid: h.keys.api.kid })
      .sign(h.keys.api.privateKey);
    expect(await status('POST', '/v2/acme/web/blobs/uploads/', `Bearer ${apiSigned}`)).toBe(401);
  });
});
