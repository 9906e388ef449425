import { z } from 'zod';
import { buildConfigSchema } from './build-config.js';
import { buildkitConfigSchema } from './buildkit-config.js';
import { cacheConfigSchema } from './cache-config.js';
import { egressConfigFromEnv, egressConfigSchema } from './egress-config.js';
import { mirrorConfigSchema } from './mirror-config.js';
import { registryConfigSchema } from './registry-config.js';
import { serverConfigSchema } from './server-config.js';
import { vmConfigSchema } from './vm-config.js';
import { webhookConfigSchema } from './webhook-config.js';

/**
 * The whole configuration: each section's schema reads its own variables from the one flat
 * environment (zod objects drop keys they do not name) and shapes its part of `Config`.
 */
const configSchema = z.object({
  server: serverConfigSchema,
  builds: buildConfigSchema,
  registry: registryConfigSchema,
  vm: vmConfigSchema,
  caches: cacheConfigSchema,
  egress: egressConfigSchema.transform((raw, ctx) => {
    const parsed = egressConfigFromEnv(raw);
    if (parsed.problems === undefined) return parsed.config;
    // Each problem starts with the variable it is about: keep that as the issue's path.
    for (const problem of parsed.problems) {
      const colon = problem.indexOf(': ');
      ctx.issues.push({
        code: 'custom',
        path: colon < 0 ? [] : [problem.slice(0, colon)],
        message: colon < 0 ? problem : problem.slice(colon + 2),
        input: raw,
      });
    }
    return z.NEVER;
  }),
  webhooks: webhookConfigSchema,
  mirror: mirrorConfigSchema,
  buildkit: buildkitConfigSchema,
});

type Sections = z.output<typeof configSchema>;

/** The daemon's whole configuration, parsed once at start and frozen; derived from the schemas. */
export type Config = { readonly [S in keyof Sections]: Readonly<Sections[S]> };

/** Thrown by loadConfig with every problem found, one per line. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Parses the environment (pure: it reads only `env`, and only the variables the sections
 * name). Reports every problem at once and returns a deeply frozen Config. An empty value
 * counts as unset.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const input: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = configSchema.safeParse({
    server: input,
    builds: input,
    registry: input,
    vm: input,
    caches: input,
    egress: input,
    webhooks: input,
    mirror: input,
    buildkit: input,
  });
  if (!parsed.success) {
    // The section name is ours, not the operator's: issues name the variable alone.
    const problems = parsed.error.issues.map((i) => {
      const where = i.path.slice(1).join('.');
      return `${where === '' ? '(root)' : where}: ${i.message}`;
    });
    throw new ConfigError([...new Set(problems)]);
  }
  return deepFreeze(parsed.data);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
