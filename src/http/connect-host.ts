/**
 * The address a local client dials to reach a listener bound to `listenHost`. A wildcard bind
 * reaches the listener on the loopback address of the same family: `0.0.0.0` → `127.0.0.1`,
 * `::` → `::1` (an IPv6 wildcard socket may refuse IPv4 when `IPV6_V6ONLY` is set, so the
 * IPv4 loopback is not a safe answer for it). Any other address is dialled as it is.
 */
export function connectHost(listenHost: string): string {
  if (listenHost === '0.0.0.0') return '127.0.0.1';
  if (listenHost === '::') return '::1';
  return listenHost;
}
