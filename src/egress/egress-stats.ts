import type { Socket } from 'node:net';
import type { EgressDenial } from './egress-denial.js';
import { formatHostPort } from './normalize-host.js';

/** Most denials one build keeps (and emits); later ones are only counted. */
export const MAX_DENIALS_KEPT = 1000;
/** Most distinct `host:port` entries one build keeps; later hosts count in the totals only. */
export const MAX_HOSTS_KEPT = 1000;

/** Traffic to one `host:port`, as the build named it. */
export interface EgressHostStats {
  readonly host: string;
  readonly port: number;
  /** Connections opened (after the policy admitted them and the connect succeeded). */
  readonly connections: number;
  /** Bytes received from the host (toward the build). */
  readonly bytesIn: number;
  /** Bytes sent to the host (from the build). */
  readonly bytesOut: number;
}

/** What one build's proxy saw: for the build result and provenance. */
export interface EgressReport {
  /** Hosts reached, sorted by `host:port`. */
  readonly hosts: readonly EgressHostStats[];
  /** Connections to hosts beyond the first MAX_HOSTS_KEPT (their bytes are in the totals). */
  readonly omittedConnections: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The first MAX_DENIALS_KEPT denials, in order. */
  readonly denied: readonly EgressDenial[];
  /** Upstream connections open now. */
  readonly openConnections: number;
  /** Every denial, kept or not. */
  readonly deniedTotal: number;
  /** Admitted connections whose DNS lookup or connect failed (answered 502). */
  readonly failedConnections: number;
}

interface HostEntry {
  host: string;
  port: number;
  connections: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * Counts one build's egress. Bytes are the upstream socket's own counters (`bytesRead`,
 * `bytesWritten`: what crossed the wire, TLS records or HTTP messages alike), folded in when
 * the socket closes and read live for sockets still open.
 */
export class EgressStats {
  private readonly hosts = new Map<string, HostEntry>();
  private readonly open = new Map<Socket, HostEntry | undefined>();
  private readonly denials: EgressDenial[] = [];
  private deniedCount = 0;
  private failures = 0;
  private omitted = 0;
  private closedIn = 0;
  private closedOut = 0;

  /** Records a denial; true when it was kept (and should be shown), false once over the cap. */
  recordDenial(denial: EgressDenial): boolean {
    this.deniedCount += 1;
    if (this.denials.length >= MAX_DENIALS_KEPT) return false;
    this.denials.push(denial);
    return true;
  }

  /** Records an admitted connection that could not be made. */
  recordFailure(): void {
    this.failures += 1;
  }

  /** Starts counting a connected upstream socket for `host:port`. */
  track(host: string, port: number, socket: Socket): void {
    const key = formatHostPort(host, port);
    let entry = this.hosts.get(key);
    if (entry === undefined && this.hosts.size < MAX_HOSTS_KEPT) {
      entry = { host, port, connections: 0, bytesIn: 0, bytesOut: 0 };
      this.hosts.set(key, entry);
    } else if (entry === undefined) {
      this.omitted += 1;
    }
    if (entry !== undefined) entry.connections += 1;
    this.open.set(socket, entry);
    socket.once('close', () => {
      this.open.delete(socket);
      this.closedIn += socket.bytesRead;
      this.closedOut += socket.bytesWritten;
      if (entry !== undefined) {
        entry.bytesIn += socket.bytesRead;
        entry.bytesOut += socket.bytesWritten;
      }
    });
  }

  /** A consistent copy of the counters, open connections included. */
  snapshot(): EgressReport {
    const live = new Map<HostEntry, { bytesIn: number; bytesOut: number }>();
    let bytesIn = this.closedIn;
    let bytesOut = this.closedOut;
    for (const [socket, entry] of this.open) {
      bytesIn += socket.bytesRead;
      bytesOut += socket.bytesWritten;
      if (entry === undefined) continue;
      const sum = live.get(entry) ?? { bytesIn: 0, bytesOut: 0 };
      sum.bytesIn += socket.bytesRead;
      sum.bytesOut += socket.bytesWritten;
      live.set(entry, sum);
    }
    const hosts = [...this.hosts.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, e]) => ({
        host: e.host,
        port: e.port,
        connections: e.connections,
        bytesIn: e.bytesIn + (live.get(e)?.bytesIn ?? 0),
        bytesOut: e.bytesOut + (live.get(e)?.bytesOut ?? 0),
      }));
    return {
      hosts,
      omittedConnections: this.omitted,
      bytesIn,
      bytesOut,
      denied: [...this.denials],
      openConnections: this.open.size,
      deniedTotal: this.deniedCount,
      failedConnections: this.failures,
    };
  }
}
