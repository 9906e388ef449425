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
