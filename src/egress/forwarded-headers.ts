import type { OutgoingHttpHeaders } from 'node:http';
import type { ProxyTarget } from './proxy-target.js';

/**
 * RFC 9110 §7.6.1 hop-by-hop fields, plus the proxy's own: never forwarded in either
 * direction. `expect` too, because Node's server has already answered `100 Continue`.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

/** The header names listed in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
function hopByHop(rawHeaders: readonly string[]): Set<string> {
  const names = new Set(HOP_BY_HOP);
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[i + 1] ?? '').split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') names.add(name);
    }
  }
  return names;
}

/** End-to-end header fields of a message, as an object Node can send (repeats as arrays). */
export function endToEndHeaders(rawHeaders: readonly string[]): OutgoingHttpHeaders {
  const skip = hopByHop(rawHeaders);
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]?.toLowerCase();
    const value = rawHeaders[i + 1];
    if (name === undefined || value === undefined || skip.has(name)) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}

/**
 * The request's end-to-end headers for the origin server: `Host` from the target the policy
 * judged (a `Host` header naming somewhere else is not passed on), one request per upstream
 * connection (`Connection: close`).
 */
export function forwardedRequestHeaders(
  rawHeaders: readonly string[],
  target: ProxyTarget,
): OutgoingHttpHeaders {
  const headers = endToEndHeaders(rawHeaders);
  headers.host = target.port === 80 ? hostText(target) : `${hostText(target)}:${target.port}`;
  headers.connection = 'close';
  return headers;
}

function hostText(target: ProxyTarget): string {
  return target.host.kind === 'ip' && target.host.family === 6
    ? `[${target.host.host}]`
    : target.host.host;
}
