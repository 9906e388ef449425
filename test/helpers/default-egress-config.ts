import { parseEgressConfig, type EgressConfig } from '../../src/config/egress-config.js';

/** The egress settings a daemon gets with no `KILN_EGRESS_*` variable set, or `env`'s. */
export function defaultEgressConfig(
  env: Readonly<Record<string, string | undefined>> = {},
): EgressConfig {
  const parsed = parseEgressConfig(env);
  if (parsed.config === undefined) throw new Error(parsed.problems.join('\n'));
  return parsed.config;
}
