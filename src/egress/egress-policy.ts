import { canonicalAddress, type AddressClassifier } from './address-classifier.js';
import type { AddressRefusal, DenialReason } from './egress-denial.js';
import type { HostAllowlist } from './host-allowlist.js';
import { formatHostPort } from './normalize-host.js';
import type { ProxyTarget } from './proxy-target.js';

/** Options of {@link EgressPolicy}: one build's view of the operator's egress settings. */
export interface EgressPolicyOptions {
  /** Ports a build may reach on public addresses (80 and 443 unless the operator says more). */
  readonly allowedPorts: readonly number[];
  /**
   * Exact `host:port` destinations the operator vouches for (internal mirrors): reached on
   * their own port whatever their address — private and loopback included.
   */
  readonly exceptions: readonly { readonly host: string; readonly port: number }[];
  /** The hosts this build may name (its allowed_hosts, or the operator's default). */
  readonly allowlist: HostAllowlist;
  /** The address policy (see createAddressClassifier). */
  readonly classifyAddress: AddressClassifier;
}

/**
 * The rules one build's proxy applies, as pure decisions. Two steps, because the address is
 * only known after DNS: `checkTarget` before resolving, `checkAddress` for each resolved
 * address. An IP literal gets both at once, its address first, so `CONNECT 10.0.0.5:6379`
 * reads "private address" rather than a port complaint. Exceptions skip the port and address
 * rules but not the allowlist: a build that narrowed its hosts stays narrowed.
 */
export class EgressPolicy {
  private readonly ports: ReadonlySet<number>;
  private readonly exceptions: ReadonlySet<string>;

  constructor(private readonly options: EgressPolicyOptions) {
    for (const port of options.allowedPorts) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new TypeError(`invalid allowed port ${port}`);
      }
    }
    this.ports = new Set(options.allowedPorts);
    this.exceptions = new Set(options.exceptions.map((e) => formatHostPort(e.host, e.port)));
  }

  /** Whether the target is one of the operator's exceptions. */
  isException(target: ProxyTarget): boolean {
    return this.exceptions.has(formatHostPort(target.host.host, target.port));
  }

  /** The refusal decided before DNS (allowlist, port, and the address of an IP literal). */
  checkTarget(target: ProxyTarget): DenialReason | undefined {
    const exception = this.isException(target);
    if (target.host.kind === 'ip' && !exception) {
      const refused = this.options.classifyAddress(target.host.host);
      if (refused !== undefined) return refused;
    }
    if (!this.options.allowlist.admits(target.host.host)) return 'host_not_allowed';
    if (!exception && !this.ports.has(target.port)) return 'port_not_allowed';
    return undefined;
  }

  /**
   * Judges one resolved address of an admitted target. Passes back the canonical address to
   * connect to (see canonicalAddress) — the very address that was judged — or the refusal.
   * An exception's addresses are not judged, only made canonical.
   */
  checkAddress(
    target: ProxyTarget,
    address: string,
  ):
    | { readonly address: string; readonly family: 4 | 6; readonly refusal?: never }
    | { readonly refusal: AddressRefusal } {
    const canonical = canonicalAddress(address);
    if (canonical === undefined) return { refusal: 'reserved' };
    if (this.isException(target)) return canonical;
    const refusal = this.options.classifyAddress(canonical.address);
    return refusal === undefined ? canonical : { refusal };
  }
}
