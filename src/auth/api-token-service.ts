import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { ApiPrincipal } from './api-principal.js';
import { API_AUDIENCE, TOKEN_ALG, TOKEN_ISSUER, type SigningKey } from './key-store.js';
import { isApiScope, RESERVED_TENANTS, type ApiScope } from './scopes.js';
import { VerifiedTokenCache } from './verified-token-cache.js';
import type { Clock } from '../../common/time/clock.js';
import { AppError } from '../errors/app-error.js';
import { isValidNameComponent } from '../registry/repository-name.js';

/** How many verified API tokens are remembered (a client sends one token with every request). */
const VERIFIED_TOKENS_KEPT = 1024;

/**
 * Tenant names use only lowercase letters, digits and `-`, at most 63 of them
 * (docs/contracts.md#tokens-and-scopes).
 */
const TENANT_CHARACTERS = /^[a-z0-9-]{1,63}$/;

/**
 * True for a tenant name that may own builds and repositories. A tenant is the first path
 * component of every repository it owns (`<tenant>/<image>`), so it must be a valid OCI name
 * component (no leading, trailing or lone `-`) as well as not a reserved namespace; a name the
 * registry would refuse with NAME_INVALID is refused here, before any build is accepted for it.
 */
export function isValidTenant(tenant: string): boolean {
  return (
    TENANT_CHARACTERS.test(tenant) && isValidNameComponent(tenant) && !RESERVED_TENANTS.has(tenant)
  );
}

/**
 * Issues and verifies API tokens (docs/contracts.md#tokens-and-scopes): ES256 JWTs signed with the
 * API key, with issuer and audience pinned so registry tokens (another key, another audience) never
 * pass.
 */
export class ApiTokenService {
  private readonly key: SigningKey;
  private readonly clock: Clock;
  private readonly verified = new VerifiedTokenCache<ApiPrincipal>({
    maxEntries: VERIFIED_TOKENS_KEPT,
  });

  constructor(options: { key: SigningKey; clock: Clock }) {
    this.key = options.key;
    this.clock = options.clock;
  }

  /** Signs a token for `tenant` with `scopes`, valid for `ttlSeconds` from the clock's now. */
  async create(input: { tenant: string; scopes: ApiScope[]; ttlSeconds: number }): Promise<string> {
    if (!isValidTenant(input.tenant)) {
      throw new AppError('BAD_REQUEST', `invalid tenant name ${JSON.stringify(input.tenant)}`);
    }
    if (input.scopes.length === 0 || !input.scopes.every((s) => isApiScope(s))) {
      throw new AppError('BAD_REQUEST', 'at least one known scope is required');
    }
    if (!Number.isInteger(input.ttlSeconds) || input.ttlSeconds <= 0) {
      throw new AppError('BAD_REQUEST', 'ttlSeconds must be a positive whole number');
    }
    const now = Math.floor(this.clock.now().getTime() / 1000);
    return new SignJWT({ scope: [...new Set(input.scopes)].join(' ') })
      .setProtectedHeader({ alg: TOKEN_ALG, kid: this.key.kid, typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(API_AUDIENCE)
      .setSubject(`tenant:${input.tenant}`)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + input.ttlSeconds)
      .sign(this.key.privateKey);
  }

  /**
   * Verifies a token; throws AppError INVALID_TOKEN for anything not a valid API token. A token
   * verified before is answered from memory while the clock is inside its `nbf`…`exp` window:
   * API tokens are not revoked (they expire), so a signature that was good stays good, and a
   * client polling `GET /builds` does not queue an ES256 verification on libuv's thread pool
   * behind the daemon's file work for every request.
   */
  async verify(token: string): Promise<ApiPrincipal> {
    const known = this.verified.get(token, Math.floor(this.clock.now().getTime() / 1000));
    if (known !== undefined) return known;
    let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
    try {
      ({ payload } = await jwtVerify(token, this.key.publicKey, {
        algorithms: [TOKEN_ALG],
        issuer: TOKEN_ISSUER,
        audience: API_AUDIENCE,
        currentDate: this.clock.now(),
        requiredClaims: ['exp', 'sub', 'jti'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JOSEError) {
        throw new AppError('INVALID_TOKEN', undefined, { cause: err });
      }
      throw err;
    }
    const sub = payload.sub ?? '';
    const tenant = sub.startsWith('tenant:') ? sub.slice('tenant:'.length) : '';
    if (!isValidTenant(tenant) || typeof payload.jti !== 'string') {
      throw new AppError('INVALID_TOKEN', 'The token names no valid tenant.');
    }
    const rawScope = payload.scope;
    const scopes = new Set<ApiScope>();
    if (typeof rawScope === 'string') {
      for (const s of rawScope.split(' ')) if (isApiScope(s)) scopes.add(s);
    }
    const principal: ApiPrincipal = { tenant, scopes, tokenId: payload.jti };
    if (typeof payload.exp === 'number') {
      this.verified.set(token, principal, { nbf: payload.nbf ?? 0, exp: payload.exp });
    }
    return principal;
  }
}
