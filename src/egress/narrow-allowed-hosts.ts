import { HostAllowlist } from './host-allowlist.js';
import { AppError } from '../errors/app-error.js';

/** Most patterns one build may list in `allowed_hosts`. */
export const MAX_ALLOWED_HOSTS = 256;

/**
 * The allowlist one build runs with. Without `requested` (the build sent no `allowed_hosts`)
 * it is the operator's default. A build's own list replaces the default and may name anything
 * within the ceiling — wider than the default or narrower — but never beyond it: every
 * requested pattern must be covered by a ceiling pattern (`*.example.com` within
 * `*.example.com` or `*`; `a.example.com` within `*.example.com`), else the whole request is
 * refused with ALLOWED_HOSTS_NOT_PERMITTED naming the offending patterns. Silently dropping
 * them would leave a build failing later with a less clear cause.
 */
export function narrowAllowedHosts(options: {
  readonly requested: readonly string[] | undefined;
  readonly defaults: HostAllowlist;
  readonly ceiling: HostAllowlist;
}): HostAllowlist {
  const { requested, defaults, ceiling } = options;
  if (requested === undefined) return defaults;
  if (requested.length > MAX_ALLOWED_HOSTS) {
    throw new AppError(
      'INVALID_ALLOWED_HOSTS',
      `allowed_hosts lists ${requested.length} entries; at most ${MAX_ALLOWED_HOSTS} are allowed.`,
    );
  }
  const parsed = HostAllowlist.parse(requested);
  if (parsed.invalid !== undefined) {
    throw new AppError(
      'INVALID_ALLOWED_HOSTS',
      `allowed_hosts: not a host or *.suffix pattern: ${parsed.invalid.join(', ')}`,
      { details: { invalid: parsed.invalid } },
    );
  }
  const outside = parsed.allowlist.outside(ceiling);
  if (outside.length > 0) {
    throw new AppError(
      'ALLOWED_HOSTS_NOT_PERMITTED',
      `allowed_hosts reaches beyond what the operator permits: ${outside.join(', ')}`,
      { details: { outside, ceiling: ceiling.toStrings() } },
    );
  }
  return parsed.allowlist;
}
