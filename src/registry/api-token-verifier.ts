import type { ApiPrincipal } from '../auth/api-principal.js';

/**
 * Verifies an API token (docs/contracts.md#tokens-and-scopes) for the registry, which accepts one
 * as the password of Basic credentials. Implemented by the daemon's ApiTokenService; `verify`
 * throws on a bad, expired or foreign token.
 */
export interface ApiTokenVerifier {
  verify(token: string): Promise<ApiPrincipal>;
}
