import type { DenialReason } from './egress-denial.js';
import type { EgressHostStats, EgressReport } from './egress-stats.js';
import { formatHostPort } from './normalize-host.js';

/** One refused attempt as the build result shows it (JSON: the time as ISO-8601 text). */
export interface EgressDeniedAttempt {
  readonly host: string;
  readonly port: number;
  /** The resolved address refused, or null when the refusal came before DNS. */
  readonly address: string | null;
  readonly reason: DenialReason;
  /** `denied 10.0.0.5:6379: private address`. */
  readonly message: string;
  readonly at: string;
}

/**
 * What an `egress` build reached and was refused, kept on its result or failure
 * (docs/contracts.md#egress): hosts with connections and bytes, the denied attempts (the first
 * MAX_DENIALS_KEPT of `deniedTotal`), and the totals.
 */
export interface EgressSummary {
  readonly hosts: readonly EgressHostStats[];
  readonly denied: readonly EgressDeniedAttempt[];
  readonly deniedTotal: number;
  readonly failedConnections: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** The stored form of a proxy's report, once its build ended. */
export function summarizeEgress(report: EgressReport): EgressSummary {
  return {
    hosts: report.hosts.map((h) => ({ ...h })),
    denied: report.denied.map((d) => ({
      host: d.host,
      port: d.port,
      address: d.address ?? null,
      reason: d.reason,
      message: d.message,
      at: d.at.toISOString(),
    })),
    deniedTotal: report.deniedTotal,
    failedConnections: report.failedConnections,
    bytesIn: report.bytesIn,
    bytesOut: report.bytesOut,
  };
}

/** `host:port` of every host reached, for provenance. */
export function hostsContacted(summary: EgressSummary): string[] {
  return summary.hosts.map((h) => formatHostPort(h.host, h.port));
}
