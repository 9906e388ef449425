import { normalizeHost, type NormalizedHost } from './normalize-host.js';

/** Where a proxied request wants to go: the normalised host and the port. */
export interface ProxyTarget {
  readonly host: NormalizedHost;
  readonly port: number;
}

/** A target, or why the request naming it is malformed (answered 400). */
export type ProxyTargetResult =
  | { readonly target: ProxyTarget; readonly error?: never }
  | { readonly target?: never; readonly error: string };

/**
 * The target of `CONNECT host:port` (RFC 9110 §9.3.6: authority-form, port required). The
 * port is split off at the last colon; the host (a name, an IPv4 spelling or a bracketed
 * IPv6 literal) goes through normalizeHost, so it is judged as a client would connect.
 */
export function parseConnectTarget(authority: string): ProxyTargetResult {
  const match = /^(.+):(\d{1,5})$/.exec(authority);
  if (match?.[1] === undefined || match[2] === undefined) {
    return { error: 'CONNECT needs host:port' };
  }
  // RFC 3986 §3.2.2: an IPv6 literal in an authority is bracketed.
  if (match[1].includes(':') && !match[1].startsWith('[')) {
    return { error: 'an IPv6 host must be in brackets' };
  }
  return withHost(match[1], Number(match[2]));
}

/**
 * The target of an absolute-form request (RFC 9112 §3.2.2, `GET http://host/path`), and the
 * origin-form path to send upstream. Only `http:`: TLS goes through CONNECT.
 */
export function parseAbsoluteTarget(
  requestTarget: string,
):
  | { readonly target: ProxyTarget; readonly path: string; readonly error?: never }
  | { readonly target?: never; readonly path?: never; readonly error: string } {
  let url: URL;
  try {
    url = new URL(requestTarget);
  } catch {
    return { error: 'a proxy request needs an absolute http:// URL' };
  }
  if (!/^http:\/\//i.test(requestTarget) || url.protocol !== 'http:') {
    return { error: 'only http:// URLs are proxied; use CONNECT for https' };
  }
  if (url.username !== '' || url.password !== '') {
    return { error: 'credentials in the URL are not forwarded' };
  }
  const result = withHost(url.hostname, url.port === '' ? 80 : Number(url.port));
  if (result.target === undefined) return { error: result.error };
  return { target: result.target, path: `${url.pathname}${url.search}` };
}

function withHost(hostText: string, port: number): ProxyTargetResult {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { error: 'invalid port' };
  const host = normalizeHost(hostText);
  if (host === undefined) return { error: 'invalid host' };
  return { target: { host, port } };
}
