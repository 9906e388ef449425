import { resolveEndpoint } from './cli-config.js';
import { EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { KilnClient, type RemoteCache } from './kiln-client.js';
import { formatBytes } from './parse-units.js';
import { renderTable } from './render-table.js';

/** When a cache was last used: its last build, else its creation. */
function lastUsed(cache: RemoteCache): string {
  return cache.last_build_at ?? cache.created_at;
}

/** The `kiln caches` table: scope, used of size, last used and by which build. */
export function cachesTable(caches: readonly RemoteCache[]): string {
  return renderTable([
    ['SCOPE', 'USED', 'SIZE', 'LAST USED', 'LAST BUILD'],
    ...caches.map((c) => [
      c.scope,
      formatBytes(c.used_bytes),
      formatBytes(c.size_bytes),
      lastUsed(c),
      c.last_build_id ?? '-',
    ]),
  ]);
}

/** `kiln caches [--output json]`: the tenant's cache disks (GET /caches). */
export async function runCachesList(
  opts: { output?: 'json' | 'text' },
  io: CliIo,
): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  const caches = await client.listCaches();
  if (opts.output === 'json') io.stdout(`${JSON.stringify(caches)}\n`);
  else if (caches.length === 0)
    io.stderr('no cache disks (a build with --cache-scope makes one)\n');
  else io.stdout(`${cachesTable(caches)}\n`);
  return EXIT.ready;
}

/** `kiln caches rm SCOPE…` (DELETE /caches/:scope): the disk and its forks in flight. */
export async function runCachesRemove(scopes: readonly string[], io: CliIo): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  for (const scope of scopes) {
    await client.deleteCache(scope);
    io.stdout(`cache ${scope} removed\n`);
  }
  return EXIT.ready;
}
