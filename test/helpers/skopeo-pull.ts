import { runClient, type ClientRun } from './registry-clients.js';

/**
 * `skopeo copy` of `source` (a `docker://` reference) into the directory `dest`, through
 * `authFile`, over plain HTTP, as user `kiln` with the registry token `token`; `extra` goes
 * before the source. Returns the run for the test to judge.
 */
export function skopeoPull(
  authFile: string,
  token: string,
  source: string,
  dest: string,
  extra: readonly string[] = [],
): Promise<ClientRun> {
  return runClient('skopeo', [
    'copy',
    '--authfile',
    authFile,
    '--src-tls-verify=false',
    '--src-creds',
    `kiln:${token}`,
    ...extra,
    source,
    `dir:${dest}`,
  ]);
}

/**
 * `skopeo copy` of `source` (an `oci:` layout reference, after `--all` for a whole index) to
 * `dest` (a `docker://` reference), through `authFile`, over plain HTTP, as `creds`
 * (`user:password`). Layers are pushed as written (uncompressed ones too), so the digests stay
 * the layout's. Throws when the copy fails: seeding is a test's setup, not what it judges.
 */
export async function skopeoSeed(
  authFile: string,
  creds: string,
  source: readonly string[],
  dest: string,
): Promise<void> {
  const run = await runClient('skopeo', [
    'copy',
    '--authfile',
    authFile,
    '--dest-tls-verify=false',
    '--dest-creds',
    creds,
    '--preserve-digests',
    ...source,
    dest,
  ]);
  if (!run.ok) throw new Error(`seeding ${dest} failed: ${run.stderr}`);
}
