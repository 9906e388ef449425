import { formatHostPort } from './normalize-host.js';

/** Why an address is refused after DNS resolution (or as a literal). */
export type AddressRefusal =
  | 'host_address'
  | 'denied_range'
  | 'loopback'
  | 'private'
  | 'carrier_grade_nat'
  | 'cloud_metadata'
  | 'link_local'
  | 'multicast'
  | 'broadcast'
  | 'unspecified'
  | 'unique_local'
  | 'site_local'
  | 'ipv4_compatible'
  | 'ipv6_transition'
  | 'reserved';

/** Why the proxy refused a connection: an address refusal or a rule checked before DNS. */
export type DenialReason =
  AddressRefusal | 'port_not_allowed' | 'host_not_allowed' | 'connection_limit';

/** The short, user-facing phrase for each reason (`denied 10.0.0.5:6379: private address`). */
export const DENIAL_MESSAGES: Readonly<Record<DenialReason, string>> = {
  host_address: 'address of the build host',
  denied_range: 'address in a range the operator denies',
  loopback: 'loopback address',
  private: 'private address',
  carrier_grade_nat: 'carrier-grade NAT address',
  cloud_metadata: 'cloud metadata address',
  link_local: 'link-local address',
  multicast: 'multicast address',
  broadcast: 'broadcast address',
  unspecified: 'unspecified address',
  unique_local: 'unique local (private) IPv6 address',
  site_local: 'site-local IPv6 address',
  ipv4_compatible: 'IPv4-compatible IPv6 address',
  ipv6_transition: 'IPv6 transition address',
  reserved: 'reserved address',
  port_not_allowed: 'port not allowed',
  host_not_allowed: 'host not in allowed_hosts',
  connection_limit: 'too many concurrent connections',
};

/** One refused connection attempt, as recorded in the stats and passed to `onDenied`. */
export interface EgressDenial {
  /** The host as the build asked for it, normalised (a name or an IP literal). */
  readonly host: string;
  readonly port: number;
  /** The resolved address that was refused, when the refusal came after DNS. */
  readonly address: string | undefined;
  readonly reason: DenialReason;
  /** `denied <host>:<port>[ (<address>)]: <phrase>`, ready to show the user. */
  readonly message: string;
  readonly at: Date;
}

/** Builds the denial record and its user-facing message. */
export function describeDenial(
  target: { host: string; port: number; address?: string | undefined },
  reason: DenialReason,
  at: Date,
): EgressDenial {
  const where = formatHostPort(target.host, target.port);
  const via =
    target.address !== undefined && target.address !== target.host ? ` (${target.address})` : '';
  return {
    host: target.host,
    port: target.port,
    address: target.address,
    reason,
    message: `denied ${where}${via}: ${DENIAL_MESSAGES[reason]}`,
    at,
  };
}
