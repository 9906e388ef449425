import { HostAllowlist } from './host-allowlist.js';
import { narrowAllowedHosts } from './narrow-allowed-hosts.js';
import type { EgressConfig } from '../config/egress-config.js';

/**
 * The allowlist one build runs with under the operator's egress settings: its own
 * `allowed_hosts` (undefined when it sent none) narrowed within the ceiling, or the default
 * list. Called when a build is accepted (so a list beyond the ceiling is a 403 at once) and
 * again when its proxy is created (the ceiling may have changed across a restart). Throws
 * INVALID_ALLOWED_HOSTS or ALLOWED_HOSTS_NOT_PERMITTED.
 */
export function buildAllowlist(
  config: EgressConfig,
  requested: readonly string[] | undefined,
): HostAllowlist {
  return narrowAllowedHosts({
    requested,
    defaults: validList(config.defaultHosts),
    ceiling: validList(config.hostsCeiling),
  });
}

/** The config's lists were validated when it was parsed. */
function validList(patterns: readonly string[]): HostAllowlist {
  const parsed = HostAllowlist.parse(patterns);
  if (parsed.allowlist === undefined) {
    throw new TypeError(`invalid host patterns in the egress config: ${parsed.invalid.join(', ')}`);
  }
  return parsed.allowlist;
}
