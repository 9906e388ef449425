import { decodeJwt } from 'jose';
import { Access, BASE_IMAGE_GLOB, MIRROR_GLOB, type AccessEntry } from './access-scope.js';
import type { ApiTokenVerifier } from './api-token-verifier.js';
import { BUILD_SUBJECT_PREFIX, type RegistryTokenService } from './registry-token-service.js';
import type { ApiPrincipal } from '../auth/api-principal.js';
import { RESERVED_TENANTS } from '../auth/scopes.js';
import type { BuildActivity } from '../builds/build-token-issuer.js';

/** Who made a registry request and what it may do. */
export interface RegistryCredential {
  /** `build:<id>`, `api:<tenant>:<jti>`, or the `sub` of a registry token. */
  subject: string;
  access: Access;
  /** Expiry in seconds since the epoch when the credential itself expires (registry tokens). */
  expiresAt: number | null;
  /** The build attempt a build's credential belongs to; carried into tokens minted from it. */
  attempt: string | null;
}

/** Thrown when credentials were presented but are not valid (`error="invalid_token"`). */
export class InvalidCredentialError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidCredentialError';
  }
}

/** The access an API token grants on the registry (docs/contracts.md#registry-access). */
export function accessForApiPrincipal(principal: ApiPrincipal): AccessEntry[] {
  if (RESERVED_TENANTS.has(principal.tenant)) return [];
  const out: AccessEntry[] = [];
  if (principal.scopes.has('registry:pull')) {
    out.push({ type: 'repository', name: `${principal.tenant}/*`, actions: ['pull'] });
  }
  if (principal.scopes.has('registry:admin')) {
    out.push({ type: 'repository', name: BASE_IMAGE_GLOB, actions: ['pull', 'push'] });
  }
  // Whoever may pull may pull through the mirror (the operator too, e.g. to seed `library/`).
  if (principal.scopes.has('registry:pull') || principal.scopes.has('registry:admin')) {
    out.push({ type: 'repository', name: MIRROR_GLOB, actions: ['pull'] });
  }
  return out;
}

/**
 * Turns an `Authorization` header into a credential: `Bearer <registry token>` (API tokens are
 * refused: they never verify against the registry key and audience), or `Basic` with a
 * registry/build token or an API token as the password. A build's token (and any token minted
 * from it) works only while its `attempt` is the build's running attempt: it dies with its run,
 * and a restart or a re-run refuses every earlier one.
 */
export class RegistryAuthenticator {
  private readonly tokens: RegistryTokenService;
  private readonly apiTokens: ApiTokenVerifier;
  private readonly buildActivity: BuildActivity;

  constructor(options: {
    tokens: RegistryTokenService;
    apiTokens: ApiTokenVerifier;
    buildActivity: BuildActivity;
  }) {
    this.tokens = options.tokens;
    this.apiTokens = options.apiTokens;
    this.buildActivity = options.buildActivity;
  }

  /** Returns null when no credentials were sent; throws InvalidCredentialError on bad ones. */
  async authenticate(authorization: string | undefined): Promise<RegistryCredential | null> {
    if (authorization === undefined || authorization.trim() === '') return null;
    const space = authorization.indexOf(' ');
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
    const value = space < 0 ? '' : authorization.slice(space + 1).trim();
    if (scheme === 'bearer') return this.fromRegistryToken(value);
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new InvalidCredentialError('malformed Basic credentials');
      return this.fromPassword(decoded.slice(colon + 1));
    }
    throw new InvalidCredentialError('unsupported authorization scheme');
  }

  /** A Basic password: a registry (build) token, else an API token. */
  async fromPassword(password: string): Promise<RegistryCredential> {
    if (password === '') throw new InvalidCredentialError('empty password');
    try {
      return await this.fromRegistryToken(password);
    } catch (registryErr) {
      let principal: ApiPrincipal;
      try {
        principal = await this.apiTokens.verify(password);
      } catch {
        throw new InvalidCredentialError('the password is not a valid token', {
          cause: registryErr,
        });
      }
      // Verified just above, so its `exp` can be read as is: registry tokens handed out for
      // this API token must not outlive it.
      const { exp } = decodeJwt(password);
      return {
        subject: `api:${principal.tenant}:${principal.tokenId}`,
        access: new Access(accessForApiPrincipal(principal)),
        expiresAt: typeof exp === 'number' ? exp : null,
        attempt: null,
      };
    }
  }

  private async fromRegistryToken(token: string): Promise<RegistryCredential> {
    let claims;
    try {
      claims = await this.tokens.verify(token);
    } catch (err) {
      throw new InvalidCredentialError('invalid registry token', { cause: err });
    }
    if (claims.sub.startsWith(BUILD_SUBJECT_PREFIX)) {
      const buildId = claims.sub.slice(BUILD_SUBJECT_PREFIX.length);
      if (
        claims.attempt === null ||
        !this.buildActivity.isAttemptRunning(buildId, claims.attempt)
      ) {
        throw new InvalidCredentialError('the build attempt this token belongs to is not running');
      }
    }
    return {
      subject: claims.sub,
      access: Access.fromTokenClaim(claims.access),
      expiresAt: claims.exp,
      attempt: claims.attempt,
    };
  }
}
