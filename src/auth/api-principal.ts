import type { ApiScope } from './scopes.js';

/** Who an API token (or a Basic credential carrying one) stands for. */
export interface ApiPrincipal {
  tenant: string;
  scopes: ReadonlySet<ApiScope>;
  /** Token id (`jti`), for logs. */
  tokenId: string;
}
