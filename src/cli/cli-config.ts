import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CliExit, EXIT } from './cli-exit.js';

/** Where the CLI talks to and as whom. */
export interface Endpoint {
  url: string;
  token: string;
}

interface StoredLogin {
  url?: unknown;
  token?: unknown;
}

/**
 * `$XDG_CONFIG_HOME/kiln/config.json`, else `~/.config/kiln/config.json` (XDG Base Directory
 * Specification: a relative XDG_CONFIG_HOME is invalid and ignored).
 */
export function configFile(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base =
    xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME ?? '', '.config');
  return path.join(base, 'kiln', 'config.json');
}

/** Checks a daemon URL and drops a trailing slash; throws a usage error for anything else. */
export function normalizeUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliExit(EXIT.usage, `"${text}" is not a URL; give one like http://127.0.0.1:8083`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliExit(EXIT.usage, `"${text}" must be an http:// or https:// URL`);
  }
  return url.href.replace(/\/+$/, '');
}

async function readStored(file: string): Promise<StoredLogin> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  try {
    return JSON.parse(text) as StoredLogin;
  } catch {
    throw new CliExit(EXIT.usage, `${file} is not valid JSON; run \`kiln login URL\` again`);
  }
}

/**
 * The daemon URL and token: KILN_URL and KILN_TOKEN override what `kiln login` stored. Throws
 * exit 3 with what to do when either is missing.
 */
export async function resolveEndpoint(
  env: Readonly<Record<string, string | undefined>>,
): Promise<Endpoint> {
  const stored = await readStored(configFile(env));
  const url = env.KILN_URL ?? (typeof stored.url === 'string' ? stored.url : undefined);
  const token = env.KILN_TOKEN ?? (typeof stored.token === 'string' ? stored.token : undefined);
  if (url === undefined || url === '' || token === undefined || token === '') {
    throw new CliExit(
      EXIT.unreachable,
      'no daemon configured: run `kiln login URL` (or set KILN_URL and KILN_TOKEN)',
    );
  }
  return { url: normalizeUrl(url), token };
}

/**
 * Stores URL and token for later commands, readable by the user only: the directory is 0700
 * and the file is written 0600 under a temporary name, then renamed, so no reader ever sees a
 * partial file or a wider mode.
 */
export async function saveLogin(
  env: Readonly<Record<string, string | undefined>>,
  login: Endpoint,
): Promise<string> {
  const file = configFile(env);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify({ url: login.url, token: login.token }, null, 2)}\n`, {
    mode: 0o600,
  });
  await rename(temp, file);
  return file;
}
