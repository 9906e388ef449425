import type { EgressLink } from './cloud-hypervisor-vm-config.js';
import { MAX_INTERFACE_NAME_BYTES } from './tap-device.js';
import { VmError } from '../vm-error.js';

/**
 * Address block for Cloud Hypervisor egress links. Each VM gets its own /30 out of it: the
 * host end of the TAP is `.1` of the /30 and the guest `.2`. The operator routes and NATs this
 * block (see the CloudHypervisorVmm TSDoc).
 */
const EGRESS_SUBNET = { base: '172.30.0.0', prefixLength: 16 } as const;

const LINK_PREFIX_LENGTH = 30;
const LINK_MASK = '255.255.255.252';
const LINK_COUNT = 2 ** (LINK_PREFIX_LENGTH - EGRESS_SUBNET.prefixLength);

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Hands out one TAP name and /30 per running VM; names are `<prefix><index>`. */
export class EgressLinkPool {
  private readonly inUse = new Set<number>();
  private readonly base = ipv4ToInt(EGRESS_SUBNET.base);

  constructor(private readonly tapPrefix: string) {
    const longest = `${tapPrefix}${LINK_COUNT - 1}`;
    if (!/^[A-Za-z0-9_-]+$/.test(tapPrefix)) {
      throw new Error(`tapPrefix "${tapPrefix}" must be letters, digits, "-" or "_"`);
    }
    if (Buffer.byteLength(longest) > MAX_INTERFACE_NAME_BYTES) {
      throw new Error(
        `tapPrefix "${tapPrefix}" is too long: "${longest}" exceeds ${MAX_INTERFACE_NAME_BYTES} bytes`,
      );
    }
  }

  acquire(): EgressLink & { index: number; prefixLength: number } {
    for (let index = 0; index < LINK_COUNT; index += 1) {
      if (this.inUse.has(index)) continue;
      this.inUse.add(index);
      const network = this.base + index * 4;
      const hex = index.toString(16).padStart(4, '0');
      return {
        index,
        tap: `${this.tapPrefix}${index}`,
        hostIp: intToIpv4(network + 1),
        guestIp: intToIpv4(network + 2),
        mask: LINK_MASK,
        prefixLength: LINK_PREFIX_LENGTH,
        // Locally administered unicast MAC (first octet 0x02), unique per link.
        guestMac: `02:4b:49:4c:${hex.slice(0, 2)}:${hex.slice(2, 4)}`,
      };
    }
    throw new VmError('VMM_NETWORK_UNAVAILABLE', 'every egress link is in use');
  }

  release(index: number): void {
    this.inUse.delete(index);
  }
}
