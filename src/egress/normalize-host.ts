import ipaddr from 'ipaddr.js';

/**
 * A host as a client would connect to it: an IP literal in canonical form, or a DNS name
 * (lower case, ASCII, without the trailing dot).
 */
export type NormalizedHost =
  | { readonly kind: 'ip'; readonly host: string; readonly family: 4 | 6 }
  | { readonly kind: 'name'; readonly host: string };

/** One DNS label: letters, digits, `_` and inner `-`, at most 63 characters (RFC 1035 §2.3.4). */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const MAX_NAME_LENGTH = 253;

/**
 * Normalises the host part of a request (`example.com`, `[::1]`, `0x7f.1`) the way an HTTP
 * client does before connecting: WHATWG URL host parsing, which percent-decodes, maps IDNs to
 * punycode, lower-cases, and reads inet_aton spellings (`0x7f.1`, `2130706433`, `127.1`,
 * `0177.0.0.1`) as the IPv4 address they denote. A policy that compared the raw text would
 * let those spellings through; one that compares this result sees `127.0.0.1`.
 *
 * Returns undefined for anything that is not a bare host: a port, userinfo, a path, a zone id,
 * an empty label, or a character DNS names do not carry.
 */
export function normalizeHost(text: string): NormalizedHost | undefined {
  // A bare IPv6 literal (configuration may spell one without brackets) is bracketed for the
  // URL parser; any other colon would be read as a port and is refused below.
  const bracketed = !text.startsWith('[') && text.includes(':') ? `[${text}]` : text;
  if (/[\s/?#@\\]/.test(bracketed)) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${bracketed}/`);
  } catch {
    return undefined;
  }
  if (url.host !== url.hostname || url.username !== '' || url.password !== '') return undefined;
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') return undefined;
  const host = url.hostname;
  if (host.startsWith('[')) {
    const inner = host.slice(1, -1);
    if (!ipaddr.IPv6.isValid(inner)) return undefined;
    return { kind: 'ip', host: ipaddr.IPv6.parse(inner).toString(), family: 6 };
  }
  // WHATWG has already turned every numeric spelling into a dotted quad (or refused it), so a
  // four-part decimal is the only IPv4 form left to recognise.
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return { kind: 'ip', host, family: 4 };
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return undefined;
  if (!name.split('.').every((label) => LABEL.test(label))) return undefined;
  return { kind: 'name', host: name };
}

/** `host:port` for messages and keys, with IPv6 literals bracketed. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
