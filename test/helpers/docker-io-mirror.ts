import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DistributionRegistry } from './mirror-distribution.js';
import { parseMirrorConfig, type MirrorConfig } from '../../src/config/mirror-config.js';

/**
 * The mirror config of a test whose only upstream, docker.io, is `upstreamUrl` (the Distribution
 * itself or a proxy in front of it), over plain HTTP, with the Distribution's Basic credentials
 * written to `dir/mirror-auth.json`; `env` adds or overrides mirror settings.
 */
export async function dockerIoMirror(
  dist: DistributionRegistry,
  upstreamUrl: string,
  dir: string,
  env: Readonly<Record<string, string>> = {},
): Promise<MirrorConfig> {
  const credentials = path.join(dir, 'mirror-auth.json');
  const basic = Buffer.from(`${dist.user}:${dist.password}`).toString('base64');
  await writeFile(credentials, JSON.stringify({ auths: { 'docker.io': { auth: basic } } }));
  return parseMirrorConfig({
    KILN_MIRROR_UPSTREAMS: `docker.io=${upstreamUrl}`,
    KILN_MIRROR_INSECURE_UPSTREAMS: 'docker.io',
    KILN_MIRROR_CREDENTIALS_FILE: credentials,
    ...env,
  });
}
