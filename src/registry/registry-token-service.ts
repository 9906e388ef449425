import { KeyObject, randomUUID, sign as signBytes } from 'node:crypto';
import { jwtVerify } from 'jose';
import type { AccessEntry } from './access-scope.js';
import type { Clock } from '../../common/time/clock.js';
import { TOKEN_ALG, TOKEN_ISSUER, type SigningKey } from '../auth/key-store.js';
import { VerifiedTokenCache } from '../auth/verified-token-cache.js';

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
  /** The private key as node:crypto signs with it, made once. */
  private readonly signingKey: KeyObject;
  /** The protected header, the same for every token: encoded once. */
  private readonly encodedHeader: string;
  private readonly audience: string;
  private readonly clock: Clock;
  private readonly verified = new VerifiedTokenCache<RegistryTokenClaims>({
    maxEntries: VERIFIED_TOKENS_KEPT,
  });

  constructor(options: { key: SigningKey; audience: string; clock: Clock }) {
    if (options.audience === '') throw new Error('registry token audience must not be empty');
    this.key = options.key;
    this.signingKey = KeyObject.from(options.key.privateKey);
    this.encodedHeader = base64url(
      JSON.stringify({ alg: TOKEN_ALG, kid: options.key.kid, typ: 'JWT' }),
    );
    this.audience = options.audience;
    this.clock = options.clock;
  }

  /**
   * Signs a token for `sub` with `access`, valid `lifetimeSeconds` from now; `attempt` binds a
   * build's token to one run of it. The promise form of {@link signNow}.
   */
  sign(
    sub: string,
    access: readonly AccessEntry[],
    lifetimeSeconds: number,
    attempt: string | null = null,
  ): Promise<{ token: string; issuedAt: Date; expiresIn: number }> {
    return Promise.resolve(this.signNow(sub, access, lifetimeSeconds, attempt));
  }

  /**
   * Signs a token at once, on this thread: the compact JWS (RFC 7515 §7.1) of the claims with
   * ES256 (RFC 7518 §3.4: the signature is R || S, 32 bytes each, which `ieee-p1363` gives).
   * node:crypto's one-shot sign takes ~0.05 ms where WebCrypto's, through jose, queues a job
   * on the thread pool and resolves a promise chain per token (~0.2 ms of the main thread's
   * time per build in the queue benchmark). Verification stays with jose.
   */
  signNow(
    sub: string,
    access: readonly AccessEntry[],
    lifetimeSeconds: number,
    attempt: string | null = null,
  ): { token: string; issuedAt: Date; expiresIn: number } {
    const issuedAt = this.clock.now();
    const iat = Math.floor(issuedAt.getTime() / 1000);
    const expiresIn = Math.max(1, Math.floor(lifetimeSeconds));
    const payload = {
      access: [...access],
      ...(attempt === null ? {} : { attempt }),
      iss: TOKEN_ISSUER,
      aud: this.audience,
      sub,
      iat,
      nbf: iat,
      exp: iat + expiresIn,
      jti: randomUUID(),
    };
    const signingInput = `${this.encodedHeader}.${base64url(JSON.stringify(payload))}`;
    const signature = signBytes('sha256', Buffer.from(signingInput, 'utf8'), {
      key: this.signingKey,
      dsaEncoding: 'ieee-p1363',
    });
    const token = `${signingInput}.${signature.toString('base64url')}`;
    // A token this service signed needs no ES256 check on its first use (a pull's first
    // request): it is remembered as verified, for the window it is valid in, like any other.
    this.verified.set(token, frozenClaims(sub, access, payload.exp, attempt), {
      nbf: iat,
      exp: payload.exp,
    });
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
    const claims = frozenClaims(payload.sub, access, payload.exp, attempt);
    this.verified.set(token, claims, { nbf: payload.nbf ?? 0, exp: payload.exp });
    return claims;
  }
}

/** Claims as every later request with the token gets them: one frozen object. */
function frozenClaims(
  sub: string,
  access: readonly AccessEntry[],
  exp: number,
  attempt: string | null,
): RegistryTokenClaims {
  return Object.freeze({
    sub,
    access: Object.freeze(
      access.map((entry) => Object.freeze({ ...entry, actions: [...entry.actions] })),
    ),
    exp,
    attempt,
  });
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
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
