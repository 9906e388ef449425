import { resolveEndpoint } from './cli-config.js';
import { EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { KilnClient } from './kiln-client.js';

/** `kiln cancel ID…`: asks the daemon to cancel each build (a finished one stays as it is). */
export async function runCancelCommand(ids: readonly string[], io: CliIo): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  for (const id of ids) {
    const build = await client.cancelBuild(id);
    io.stdout(
      ['ready', 'failed', 'cancelled'].includes(build.status)
        ? `${id}: already ${build.status}\n`
        : `${id}: cancelling (follow with \`kiln logs ${id} -f\`)\n`,
    );
  }
  return EXIT.ready;
}
