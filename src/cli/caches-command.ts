import { resolveEndpoint } from './cli-config.js';
import { EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { KilnClient, type RemoteCache } from './kiln-client.js';
import { renderTable } from './render-table.js';

/** Bytes in the units `kiln caches` shows (binary, one decimal above KiB). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

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
