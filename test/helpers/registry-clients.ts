import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Outcome of running a registry client (skopeo, buildah). */
export interface ClientRun {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs a client binary with a bounded time, never throwing on a non-zero exit. */
export async function runClient(
  binary: 'skopeo' | 'buildah',
  args: string[],
  env: Record<string, string> = {},
): Promise<ClientRun> {
  try {
    const { stdout, stderr } = await execFileAsync(binary, args, {
      env: { ...process.env, ...env },
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { ok: true, stdout, stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}
