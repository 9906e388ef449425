import ipaddr from 'ipaddr.js';
import type { AddressRefusal } from './egress-denial.js';

type Ip = ipaddr.IPv4 | ipaddr.IPv6;

/** Options of {@link createAddressClassifier}. */
export interface AddressClassifierOptions {
  /** Every address of the build host (all interfaces): refused even when public. */
  readonly hostAddresses: readonly string[];
  /** Extra CIDR ranges the operator refuses (for example the host's NAT'ed public address). */
  readonly deniedCidrs?: readonly string[];
}

/** Says why an IP address must not be connected to, or undefined for a public unicast one. */
export type AddressClassifier = (address: string) => AddressRefusal | undefined;

/** AWS's IPv6 instance metadata endpoint (IMDS), inside the unique local range. */
const AWS_IMDS_V6 = ipaddr.IPv6.parse('fd00:ec2::254');
const CLOUD_METADATA_V4 = ipaddr.IPv4.parse('169.254.169.254');
/** RFC 6052 §2.1: the well-known NAT64 prefix, whose last 32 bits are the IPv4 destination. */
const NAT64_WELL_KNOWN: [ipaddr.IPv6, number] = [ipaddr.IPv6.parse('64:ff9b::'), 96];
/** RFC 4291 §2.5.5.1: deprecated IPv4-compatible addresses `::a.b.c.d`. */
const IPV4_COMPATIBLE: [ipaddr.IPv6, number] = [ipaddr.IPv6.parse('::'), 96];

/**
 * Builds the address policy the proxy applies after DNS resolution: only public unicast
 * addresses pass. ipaddr.js knows the special-purpose ranges (IANA registries); anything it
 * does not call `unicast` is refused, so a range we did not think of fails closed. IPv6 forms
 * that carry an IPv4 address (IPv4-mapped, RFC 6145 translated, NAT64, 6to4, Teredo,
 * IPv4-compatible) are judged by the IPv4 address inside them, so `::ffff:10.0.0.5` is as
 * private as `10.0.0.5`. Invalid options throw here, at wiring time.
 */
export function createAddressClassifier(options: AddressClassifierOptions): AddressClassifier {
  const host = new Set(options.hostAddresses.map((a) => canonical(parseStrict(a, 'host address'))));
  const denied = (options.deniedCidrs ?? []).map((cidr) => {
    if (!ipaddr.isValidCIDR(cidr)) throw new TypeError(`invalid denied CIDR ${cidr}`);
    return ipaddr.parseCIDR(cidr);
  });

  const classify = (ip: Ip): AddressRefusal | undefined => {
    if (ip.kind() === 'ipv6') {
      const embedded = classifyEmbedded(ip as ipaddr.IPv6);
      if (embedded !== 'none') return embedded;
    }
    // The range names the most telling reason (`loopback` rather than "the host's own" for
    // 127.0.0.1); the host's own and the operator's ranges catch what is otherwise public.
    const range = classifyRange(ip);
    if (range !== undefined) return range;
    if (host.has(canonical(ip))) return 'host_address';
    if (denied.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits))) {
      return 'denied_range';
    }
    return undefined;
  };

  /** For IPv6 forms carrying an IPv4 address: the verdict; 'none' for plain IPv6. */
  const classifyEmbedded = (ip: ipaddr.IPv6): AddressRefusal | undefined | 'none' => {
    const bytes = ip.toByteArray();
    const v4 = (from: number, invert = false): ipaddr.IPv4 =>
      ipaddr.fromByteArray(
        bytes.slice(from, from + 4).map((b) => (invert ? b ^ 0xff : b)),
      ) as ipaddr.IPv4;
    const range: string = ip.range();
    // Mapped and translated forms reach the IPv4 address itself: judge it alone.
    if (range === 'ipv4Mapped' || range === 'rfc6145') return classify(v4(12));
    if (range === 'rfc6052') {
      // The well-known prefix is how DNS64 spells public IPv4 hosts on IPv6-only networks;
      // the local-use prefix (RFC 8215) leads to a site's own translator: refused.
      return ip.match(NAT64_WELL_KNOWN) ? classify(v4(12)) : 'ipv6_transition';
    }
    // 6to4 (RFC 3056 §2) and Teredo (RFC 4380 §4: server in bits 32-63, client inverted in
    // the last 32) tunnel through an IPv4 relay; name the embedded address when it is refused.
    if (range === '6to4') return classify(v4(2)) ?? 'ipv6_transition';
    if (range === 'teredo') return classify(v4(4)) ?? classify(v4(12, true)) ?? 'ipv6_transition';
    if (range === 'unicast' && ip.match(IPV4_COMPATIBLE)) {
      return classify(v4(12)) ?? 'ipv4_compatible';
    }
    return 'none';
  };

  return (address) => {
    if (!ipaddr.isValid(address)) return 'reserved';
    return classify(ipaddr.parse(address));
  };
}

/**
 * The one spelling of an address that is judged and then connected to: ipaddr.js's reading,
 * with IPv4-mapped forms as plain IPv4. Connecting to this rather than to the resolver's text
 * means no second parser (the kernel's, or getaddrinfo's for `010.0.0.1`) can read the
 * address differently from the policy. Undefined when it is not an IP address.
 */
export function canonicalAddress(text: string): { address: string; family: 4 | 6 } | undefined {
  if (!ipaddr.isValid(text)) return undefined;
  const ip = ipaddr.process(text);
  return { address: ip.toString(), family: ip.kind() === 'ipv4' ? 4 : 6 };
}

/**
 * ipaddr.js's range names → why such an address is refused, per family; `unicast` (null) is
 * the only one that passes, and a name not listed is `reserved`. A cloud's metadata endpoint
 * sits inside one range of each family and is named apart ({@link METADATA_ENDPOINTS}).
 */
const V4_RANGES: Readonly<Record<string, AddressRefusal | null>> = {
  unicast: null,
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link_local',
  loopback: 'loopback',
  carrierGradeNat: 'carrier_grade_nat',
  private: 'private',
};
const V6_RANGES: Readonly<Record<string, AddressRefusal | null>> = {
  unicast: null,
  unspecified: 'unspecified',
  loopback: 'loopback',
  linkLocal: 'link_local',
  multicast: 'multicast',
  uniqueLocal: 'unique_local',
  deprecatedSiteLocal: 'site_local',
};
/**
 * The instance metadata endpoints, 169.254.169.254 (link local) and AWS's IPv6 one, in their
 * normalized spelling (an IPv4 and an IPv6 spelling never collide).
 */
const METADATA_ENDPOINTS: ReadonlySet<string> = new Set(
  [CLOUD_METADATA_V4, AWS_IMDS_V6].map((m) => m.toNormalizedString()),
);

/** The refusal of an address's own range, or undefined for unicast. */
function classifyRange(ip: Ip): AddressRefusal | undefined {
  const refusal = (ip.kind() === 'ipv4' ? V4_RANGES : V6_RANGES)[ip.range()];
  if (refusal === null) return undefined;
  if (METADATA_ENDPOINTS.has(ip.toNormalizedString())) return 'cloud_metadata';
  return refusal ?? 'reserved';
}

function parseStrict(address: string, what: string): Ip {
  if (!ipaddr.isValid(address)) throw new TypeError(`invalid ${what} ${address}`);
  return ipaddr.parse(address);
}

/** One spelling per address: IPv4-mapped host addresses compare equal to their IPv4 form. */
function canonical(ip: Ip): string {
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (ip as ipaddr.IPv6).toIPv4Address().toString();
  }
  return ip.toString();
}
