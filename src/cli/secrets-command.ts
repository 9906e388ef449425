import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveEndpoint } from './cli-config.js';
import { EXIT, usage, type ExitCode } from './cli-exit.js';
import { readAll, type CliIo } from './cli-io.js';
import { KilnClient } from './kiln-client.js';

/**
 * The value of `kiln secrets set ID`: from a file, an environment variable or standard input,
 * never from an argument (it would stay in the shell history and in `ps`).
 */
async function secretValue(
  opts: { fromFile?: string; fromEnv?: string },
  io: CliIo,
): Promise<string> {
  if (opts.fromFile !== undefined && opts.fromEnv !== undefined) {
    throw usage('give either --from-file or --from-env, not both');
  }
  if (opts.fromFile !== undefined) {
    return readFile(path.resolve(io.cwd ?? process.cwd(), opts.fromFile), 'utf8').catch(() => {
      throw usage(`cannot read ${opts.fromFile}`);
    });
  }
  if (opts.fromEnv !== undefined) {
    const value = io.env[opts.fromEnv];
    if (value === undefined) throw usage(`${opts.fromEnv} is not set in the environment`);
    return value;
  }
  if (!io.stdin || io.stdin.isTTY) {
    throw usage('pipe the value on standard input, or use --from-file FILE or --from-env VAR');
  }
  return readAll(io.stdin);
}

export async function runSecretsSet(
  id: string,
  opts: { fromFile?: string; fromEnv?: string },
  io: CliIo,
): Promise<ExitCode> {
  const value = await secretValue(opts, io);
  const client = new KilnClient(await resolveEndpoint(io.env));
  const outcome = await client.putSecret(id, value);
  io.stdout(`secret ${id} ${outcome} (use it with --stored-secret ${id})\n`);
  return EXIT.ready;
}

export async function runSecretsList(
  opts: { output?: 'json' | 'text' },
  io: CliIo,
): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  const secrets = await client.listSecrets();
  if (opts.output === 'json') io.stdout(`${JSON.stringify(secrets)}\n`);
  else if (secrets.length === 0) io.stderr('no secrets stored\n');
  else {
    const width = Math.max(2, ...secrets.map((s) => s.id.length));
    io.stdout(
      `${'ID'.padEnd(width)}  UPDATED\n${secrets.map((s) => `${s.id.padEnd(width)}  ${s.updated_at}`).join('\n')}\n`,
    );
  }
  return EXIT.ready;
}

export async function runSecretsRemove(ids: readonly string[], io: CliIo): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  for (const id of ids) {
    await client.deleteSecret(id);
    io.stdout(`secret ${id} removed\n`);
  }
  return EXIT.ready;
}
