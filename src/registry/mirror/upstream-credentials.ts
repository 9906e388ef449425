import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/** A user name and password (or token) for one upstream. */
export interface UpstreamCredentials {
  username: string;
  password: string;
}

const authFileSchema = z.object({
  auths: z
    .record(
      z.string(),
      z.object({
        auth: z.string().optional(),
        username: z.string().optional(),
        password: z.string().optional(),
      }),
    )
    .default({}),
});

/** Keys Docker's and containers' tools write for Docker Hub, besides `docker.io`. */
const DOCKER_HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io'];

/**
 * Reads a containers auth file (`containers-auth.json(5)`, the format of `skopeo login
 * --authfile` and of Docker's `config.json`) into credentials per upstream name. An entry is
 * either `auth` (base64 of `user:password`) or `username` + `password`. Keys are registry
 * hosts; Docker Hub's legacy keys count as `docker.io`. Throws with the file named on any
 * problem, so a bad file stops the daemon at start.
 */
export async function readUpstreamCredentials(
  file: string,
): Promise<Map<string, UpstreamCredentials>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`mirror credentials file ${file}: cannot read it as JSON`, { cause: err });
  }
  const parsed = authFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`mirror credentials file ${file}: not a containers auth file`);
  }
  const out = new Map<string, UpstreamCredentials>();
  for (const [key, entry] of Object.entries(parsed.data.auths)) {
    let creds: UpstreamCredentials;
    if (entry.auth !== undefined) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0)
        throw new Error(`mirror credentials file ${file}: "${key}" has a malformed auth`);
      creds = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    } else if (entry.username !== undefined && entry.password !== undefined) {
      creds = { username: entry.username, password: entry.password };
    } else {
      throw new Error(
        `mirror credentials file ${file}: "${key}" has neither auth nor username and password`,
      );
    }
    const name = DOCKER_HUB_KEYS.includes(key)
      ? 'docker.io'
      : key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    out.set(name, creds);
  }
  return out;
}
