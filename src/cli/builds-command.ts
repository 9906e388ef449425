import { resolveEndpoint } from './cli-config.js';
import { EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { KilnClient } from './kiln-client.js';
import { renderTable } from './render-table.js';

/** Whole seconds between two timestamps, or '-' when the build has not started or ended. */
function duration(from: string | null, to: string | null): string {
  if (from === null || to === null) return '-';
  return `${Math.round((Date.parse(to) - Date.parse(from)) / 1000)}s`;
}

/** `kiln builds [--status S] [--limit N] [--output json]`: the tenant's builds, newest first. */
export async function runBuildsCommand(
  opts: { status?: string; limit: number; output?: 'json' | 'text' },
  io: CliIo,
): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  const builds = await client.listBuilds({ status: opts.status, limit: opts.limit });
  if (opts.output === 'json') {
    io.stdout(`${JSON.stringify(builds)}\n`);
    return EXIT.ready;
  }
  if (builds.length === 0) {
    io.stderr(opts.status ? `no ${opts.status} builds\n` : 'no builds yet\n');
    return EXIT.ready;
  }
  const rows = [
    ['ID', 'STATUS', 'IMAGE', 'CREATED', 'TOOK'],
    ...builds.map((b) => [
      b.id,
      b.status === 'failed' && b.error ? `failed (${b.error.code})` : b.status,
      b.result?.image_ref ?? b.repository,
      b.created_at,
      duration(b.created_at, b.finished_at),
    ]),
  ];
  io.stdout(`${renderTable(rows)}\n`);
  return EXIT.ready;
}
