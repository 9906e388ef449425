import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run-cli.js';
import { sampleTar } from '../helpers/tar-builder.js';

let dataDir: string;
const children: ChildProcessWithoutNullStreams[] = [];

beforeEach(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-daemon-'));
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts `src/main.ts` as the end-to-end tests do and waits for its "listening" line. */
async function startDaemon(): Promise<{
  child: ChildProcessWithoutNullStreams;
  url: string;
  lines: string[];
}> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      KILN_DATA_DIR: dataDir,
      KILN_PORT: '0',
      // No guest image: builds fail fast instead of booting VMs; this test is about the daemon.
      KILN_IMAGE_DIR: path.join(dataDir, 'no-image'),
      KILN_SHUTDOWN_GRACE_SECONDS: '5',
    },
  });
  children.push(child);
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        const parsed = JSON.parse(line) as { msg?: string; url?: string; port?: number };
        if (parsed.msg === 'listening' && parsed.url) resolve(parsed.url);
      }
    });
    child.once('exit', (code) => {
      reject(new Error(`daemon exited with ${code}`));
    });
  });
  return { child, url, lines };
}

function exited(child: ChildProcessWithoutNullStreams) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
    } else
      child.once('exit', (code, signal) => {
        resolve({ code, signal });
      });
  });
}

async function token(): Promise<string> {
  let out = '';
  await runCli(['token', 'create', '--tenant', 'acme', '--scope', 'builds:write,builds:read'], {
    env: { KILN_DATA_DIR: dataDir },
    stdout: (t) => (out += t),
    stderr: () => undefined,
  });
  return out.trim();
}

describe('the daemon process', () => {
  it('logs its URL, serves the API, survives SIGKILL and stops cleanly on SIGTERM', async () => {
    const first = await startDaemon();
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
    const bearer = `Bearer ${await token()}`;
    const fd = new FormData();
    fd.append('source', new Blob([sampleTar()]), 'app.tar');
    const posted = await fetch(`${first.url}/builds`, {
      method: 'POST',
      body: fd,
      headers: { authorization: bearer },
    });
    expect(posted.status).toBe(202);
    const { id } = (await posted.json()) as { id: string };

    first.child.kill('SIGKILL');
    await exited(first.child);

    const second = await startDaemon();
    const got = await fetch(`${second.url}/builds/${id}`, { headers: { authorization: bearer } });
    expect(got.status).toBe(200);
    expect(
      second.lines.some((l) => l.includes('authorization') || l.includes(bearer.slice(7))),
    ).toBe(false);

    second.child.kill('SIGTERM');
    expect(await exited(second.child)).toEqual({ code: 0, signal: null });
    expect(second.lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });
});
