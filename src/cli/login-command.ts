import { normalizeUrl, saveLogin } from './cli-config.js';
import { EXIT, usage, type ExitCode } from './cli-exit.js';
import { readAll, type CliIo } from './cli-io.js';
import { DaemonUnreachable, KilnClient, TokenForbidden, unreachableExit } from './kiln-client.js';

/**
 * `kiln login URL [--token T]`: checks the token against the daemon (GET /builds, so a token
 * without `builds:read` is still stored, with a warning) and stores URL and token in the
 * user's config file, mode 0600. Without --token the token is read from standard input.
 */
export async function runLoginCommand(
  rawUrl: string,
  opts: { token?: string },
  io: CliIo,
): Promise<ExitCode> {
  const url = normalizeUrl(rawUrl);
  let token = opts.token ?? io.env.KILN_TOKEN;
  if (token === undefined) {
    if (!io.stdin || io.stdin.isTTY) {
      throw usage(
        'give the token with --token, KILN_TOKEN or on standard input (echo "$TOKEN" | kiln login URL)',
      );
    }
    token = (await readAll(io.stdin)).trim();
  }
  if (token === '') throw usage('the token is empty');
  const client = new KilnClient({ url, token });
  try {
    await client.listBuilds({ limit: 1 });
  } catch (err) {
    if (err instanceof DaemonUnreachable) throw unreachableExit(err);
    if (!(err instanceof TokenForbidden)) throw err;
    io.stderr(`kiln: warning: ${err.message}\n`);
  }
  const file = await saveLogin(io.env, { url, token });
  io.stdout(`logged in to ${url} (saved in ${file})\n`);
  return EXIT.ready;
}
