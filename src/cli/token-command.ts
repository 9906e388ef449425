import { InvalidArgumentError } from 'commander';
import { EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { systemClock } from '../../common/time/clock.js';
import { ApiTokenService } from '../auth/api-token-service.js';
import { loadOrCreateKeys } from '../auth/key-store.js';
import { isApiScope, type ApiScope } from '../auth/scopes.js';
import { loadConfig } from '../config/config.js';

/** Parses `--scope a,b` into known API scopes. */
export function parseScopes(text: string): ApiScope[] {
  const scopes = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bad = scopes.filter((s) => !isApiScope(s));
  if (scopes.length === 0 || bad.length > 0) {
    throw new InvalidArgumentError(`unknown scope(s): ${bad.join(', ') || '(none given)'}`);
  }
  return scopes as ApiScope[];
}

/**
 * `kiln token create`: prints an API token signed with the daemon's keys, read from the data
 * directory of the same configuration the daemon uses (KILN_DATA_DIR). Runs on the daemon's
 * host; it needs no daemon running.
 */
export async function runTokenCreate(
  opts: { tenant: string; scope: ApiScope[]; ttl: number },
  io: CliIo,
): Promise<ExitCode> {
  const config = loadConfig(io.env);
  const keys = await loadOrCreateKeys(config.server.dataDir);
  const service = new ApiTokenService({ key: keys.api, clock: io.clock ?? systemClock });
  io.stdout(
    `${await service.create({ tenant: opts.tenant, scopes: opts.scope, ttlSeconds: opts.ttl })}\n`,
  );
  return EXIT.ready;
}
