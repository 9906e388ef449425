import { lookup } from 'node:dns/promises';

/** One resolved address of a name. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/**
 * Resolves a DNS name to all its addresses. A port so tests map names to hostile addresses
 * without DNS; the proxy judges every address it returns and connects only to those.
 */
export type EgressResolver = (name: string) => Promise<readonly ResolvedAddress[]>;

/**
 * `dns.lookup` with `all: true`: the system resolver (getaddrinfo, so /etc/hosts and
 * nsswitch count, as they would for any process on the host), in the order it returns.
 */
export const systemResolver: EgressResolver = async (name) => {
  const found = await lookup(name, { all: true, verbatim: true });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};
