import { networkInterfaces } from 'node:os';

/** The shape of `os.networkInterfaces()` this needs. */
export type InterfaceTable = Readonly<
  Record<string, readonly { readonly address: string }[] | undefined>
>;

/**
 * Every address of every interface of the build host, loopback included. A build must not
 * reach the host through one of its own addresses even when that address is public (a cloud
 * VM whose daemon listens on 0.0.0.0). Read when a build's proxy is created, so an address
 * that appeared since start (DHCP, a new interface) is covered for the next build.
 */
export function hostAddresses(table: InterfaceTable = networkInterfaces()): string[] {
  const out = new Set<string>();
  for (const entries of Object.values(table)) {
    for (const entry of entries ?? []) out.add(entry.address);
  }
  return [...out];
}
