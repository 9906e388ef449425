import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import type { AccessEntry } from './access-scope.js';
import { VerifiedTokenCache } from './verified-token-cache.js';
import type { Clock } from '../../common/time/clock.js';
import { TOKEN_ALG, TOKEN_ISSUER, type SigningKey } from '../auth/key-store.js';

/** A verified registry token. */
export interface RegistryTokenClaims {
  sub: string;
  access: readonly AccessEntry[];
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** The build attempt a build's token (and every token minted from it) belongs to. */
  attempt: string | null;
}

/** Verified tokens remembered (a few per client in flight; each entry is ~2 KiB). */
const VERIFIED_TOKENS_KEPT = 1024;

/** `sub` prefix of a build's tokens; the registry checks the build is still active. */
export const BUILD_SUBJECT_PREFIX = 'build:';

/**
 * Signs and verifies registry tokens (docs/contracts.md#tokens-and-scopes): ES256 with the registry
 * key, `iss` kiln, `aud` the registry service; algorithm, issuer and audience pinned on verify and
 * time taken from the injected clock.
 */
export class RegistryTokenService {
  private readonly key: SigningKey;
  private readonly audience: string;
  private readonly clock: Clock;
  private readonly verified = new VerifiedTokenCache<RegistryTokenClaims>({
    maxEntries: VERIFIED_TOKENS_KEPT,
  });

  constructor(options: { key: SigningKey; audience: string; clock: Clock }) {
    if (options.audience === '') throw new Error('registry token audience must not be empty');
    this.key = options.key;
    this.audience = options.audience;
    this.clock = options.clock;
  }

  /**
   * Signs a token for `sub` with `access`, valid `lifetimeSeconds` from now; `attempt` binds a
   * build's token to one run of it.
   */
  async sign(
    sub: string,
    access: readonly AccessEntry[],
    lifetimeSeconds: number,
    attempt: string | null = null,
  ): Promise<{ token: string; issuedAt: Date; expiresIn: number }> {
    const issuedAt = this.clock.now();
    const iat = Math.floor(issuedAt.getTime() / 1000);
    const expiresIn = Math.max(1, Math.floor(lifetimeSeconds));
    const claims = attempt === null ? { access: [...access] } : { access: [...access], attempt };
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: TOKEN_ALG, kid: this.key.kid, typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(this.audience)
      .setSubject(sub)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + expiresIn)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
    return { token, issuedAt, expiresIn };
  }

  /**
   * Verifies a registry token; throws (jose errors, or Error) on anything wrong. A token
   * verified before is answered from memory while the clock is inside its `nbf`…`exp` window:
   * a registry token is never revoked (a build's is refused through its attempt, which the
   * authenticator checks on every request), so a signature that was good stays good.
   */
  async verify(token: string): Promise<RegistryTokenClaims> {
    const now = this.clock.now();
    const known = this.verified.get(token, Math.floor(now.getTime() / 1000));
    if (known !== undefined) return known;
    const { payload } = await jwtVerify(token, this.key.publicKey, {
      algorithms: [TOKEN_ALG],
      issuer: TOKEN_ISSUER,
      audience: this.audience,
      currentDate: now,
      requiredClaims: ['sub', 'exp', 'iat'],
    });
    const access = parseAccessClaim(payload.access);
    if (typeof payload.sub !== 'string' || typeof payload.exp !== 'number' || !access) {
      throw new Error('registry token lacks sub, exp or a valid access claim');
    }
    const attempt = typeof payload.attempt === 'string' ? payload.attempt : null;
    // Frozen: every later request with this token gets the same object.
    const claims: RegistryTokenClaims = Object.freeze({
      sub: payload.sub,
      access: Object.freeze(access.map((entry) => Object.freeze(entry))),
      exp: payload.exp,
      attempt,
    });
    this.verified.set(token, claims, { nbf: payload.nbf ?? 0, exp: payload.exp });
    return claims;
  }
}

function parseAccessClaim(value: unknown): AccessEntry[] | null {
  if (!Array.isArray(value)) return null;
  const out: AccessEntry[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) return null;
    const { type, name, actions } = item as Record<string, unknown>;
    if (type !== 'repository' || typeof name !== 'string' || !Array.isArray(actions)) continue;
    const list = (actions as unknown[]).filter((a): a is string => typeof a === 'string');
    out.push({ type, name, actions: list });
  }
  return out;
}
