import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { systemClock, type Clock } from '../../common/time/clock.js';
import { ApiTokenService } from '../auth/api-token-service.js';
import { loadOrCreateKeys } from '../auth/key-store.js';
import { isApiScope, type ApiScope } from '../auth/scopes.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { isAppError } from '../errors/app-error.js';

export interface CliIo {
  env: Readonly<Record<string, string | undefined>>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  clock?: Clock;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses a duration such as 3600, 90m, 12h or 30d into seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!m?.[1]) throw new InvalidArgumentError('expected a duration such as 3600, 12h or 30d');
  const seconds = Number(m[1]) * (UNIT_SECONDS[m[2] ?? ''] ?? 1);
  if (seconds <= 0) throw new InvalidArgumentError('must be positive');
  return seconds;
}

function parseScopes(text: string): ApiScope[] {
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
 * The `kiln` command line. `kiln token create --tenant t --scope a,b [--ttl 30d]` prints an API
 * token signed with the daemon's keys, read from the data directory of the same configuration
 * the daemon uses (KILN_DATA_DIR). Returns the process exit code.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const program = new Command('kiln')
    .description('Kiln build host command line')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  let exitCode = 0;
  const token = program.command('token').description('API tokens');
  token
    .command('create')
    .description('print a new API token for a tenant')
    .requiredOption('--tenant <tenant>', 'tenant name')
    .requiredOption(
      '--scope <scopes>',
      'comma-separated scopes, e.g. builds:write,builds:read',
      parseScopes,
    )
    .option('--ttl <duration>', 'lifetime (s, m, h or d suffix)', parseTtl, 30 * 86_400)
    .action(async (opts: { tenant: string; scope: ApiScope[]; ttl: number }) => {
      const config = loadConfig(io.env);
      const keys = await loadOrCreateKeys(config.server.dataDir);
      const service = new ApiTokenService({ key: keys.api, clock: io.clock ?? systemClock });
      io.stdout(
        `${await service.create({ tenant: opts.tenant, scopes: opts.scope, ttlSeconds: opts.ttl })}\n`,
      );
    });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      exitCode = err.exitCode;
    } else if (err instanceof ConfigError || isAppError(err)) {
      io.stderr(`kiln: ${err.message}\n`);
      exitCode = 2;
    } else {
      throw err;
    }
  }
  return exitCode;
}
