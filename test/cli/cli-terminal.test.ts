import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually, listen, type RunningServer } from '../helpers/api-server.js';
import { REPO_ROOT } from '../helpers/e2e-daemon.js';
import { okOutcome } from '../helpers/fake-build-runner.js';

const execFileAsync = promisify(execFile);

/**
 * `kiln` as a user runs it: in a real pseudo-terminal (a tmux pane on a private tmux server),
 * against the daemon's HTTP app on loopback (the VM runner is the FakeBuildRunner stand-in,
 * driven here). The test reads the screen, types Ctrl-C and reads the exit status tmux keeps
 * for the dead pane.
 */
let h: Harness;
let server: RunningServer;
let work: string;
let socket: string;

beforeEach(async () => {
  h = await createHarness();
  server = await listen(h.app);
  work = await mkdtemp(path.join(tmpdir(), 'kiln-cli-tty-'));
  socket = `kiln-cli-test-${process.pid}-${randomBytes(4).toString('hex')}`;
});
afterEach(async () => {
  // Only this test's private tmux server (named by its socket) is stopped.
  await execFileAsync('tmux', ['-L', socket, 'kill-server']).catch(() => undefined);
  await server.close();
  await h.close();
  await rm(work, { recursive: true, force: true });
});

const tmux = async (...args: string[]) =>
  (await execFileAsync('tmux', ['-L', socket, ...args])).stdout;

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Starts `kiln <args>` in a 100×30 pane that stays on screen after the process exits. */
async function kilnInPane(args: string[]): Promise<void> {
  const token = await h.token('acme');
  await writeFile(
    path.join(work, 'tmux.conf'),
    'set -g remain-on-exit on\nset -g history-limit 5000\n',
  );
  const command = [
    'env',
    `KILN_URL=${server.url}`,
    `KILN_TOKEN=${token}`,
    `HOME=${work}`,
    'TERM=xterm-256color',
    process.execPath,
    // tsx by path: the pane's working directory is the temp dir, where `tsx` does not resolve.
    '--import',
    pathToFileURL(path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href,
    path.join(REPO_ROOT, 'src', 'cli', 'kiln.ts'),
    ...args,
  ]
    .map(shellQuote)
    .join(' ');
  await execFileAsync(
    'tmux',
    [
      '-L',
      socket,
      '-f',
      path.join(work, 'tmux.conf'),
      'new-session',
      '-d',
      '-s',
      'kiln',
      '-x',
      '100',
      '-y',
      '30',
      '-c',
      work,
      command,
    ],
    { cwd: REPO_ROOT },
  );
}

/** The pane's screen and scroll-back as text. */
const screen = () => tmux('capture-pane', '-p', '-J', '-S', '-', '-t', 'kiln');

async function waitForScreen(text: string): Promise<string> {
  let last = '';
  const deadline = Date.now() + 30_000;
  while (!(last = await screen()).includes(text)) {
    if (Date.now() > deadline)
      throw new Error(`screen never showed ${JSON.stringify(text)}:\n${last}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return last;
}

/** Resolves with the exit status once the process in the pane has ended. */
async function exitStatus(): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [dead, status] = (
      await tmux('display-message', '-p', '-t', 'kiln', '#{pane_dead} #{pane_dead_status}')
    )
      .trim()
      .split(' ');
    if (dead === '1') return Number(status);
    if (Date.now() > deadline) throw new Error(`kiln still running:\n${await screen()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function appContext(): Promise<string> {
  const dir = path.join(work, 'app');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM busybox\nCOPY blob /blob\n');
  await writeFile(path.join(dir, 'blob'), randomBytes(2 * 1024 * 1024));
  return dir;
}

describe('kiln in a real terminal', () => {
  it('draws the upload bar, shows the engine output, and exits 0 with the image on ready', async () => {
    await appContext();
    await kilnInPane(['build', 'app', '-t', 'web']);
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    fake.sink.status('booting');
    fake.sink.status('building');
    fake.sink.log('stdout', 'STEP 1/2: FROM busybox\n', h.time.now());
    await waitForScreen('STEP 1/2: FROM busybox');
    fake.finish(okOutcome(`acme/web:${fake.input.build.id}`));
    expect(await exitStatus()).toBe(0);
    const text = await screen();
    // The terminal gets cli-progress's bar (in brackets, with ETA), not the plain lines.
    expect(text).toMatch(/uploading context \[[█░]+\] 100% .*MiB\/2\.\d MiB .*\/s ETA/);
    expect(text).not.toContain('uploading context: ');
    expect(text).toContain(`image  127.0.0.1:8083/acme/web:${fake.input.build.id}`);
    expect(text).toContain('=> ready');
  });

  it('Ctrl-C cancels the build and waits for cancelled (exit 130); twice leaves at once', async () => {
    await appContext();
    h.runner.holdAborts = true;
    await kilnInPane(['build', 'app']);
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    fake.sink.log('stdout', 'working…\n', h.time.now());
    await waitForScreen('working…');
    await tmux('send-keys', '-t', 'kiln', 'C-c');
    await waitForScreen('press Ctrl-C again to leave without waiting');
    await eventually(() => fake.signal.aborted);
    fake.finish({
      ok: false,
      code: 'cancelled',
      message: 'aborted: cancel',
      logTail: [],
      phaseSeconds: {},
      bootSeconds: null,
    });
    expect(await exitStatus()).toBe(130);
    expect(await screen()).toContain(`kiln: build ${fake.input.build.id} was cancelled`);

    await tmux('kill-server');
    await kilnInPane(['build', 'app']);
    await h.runner.waitForRuns(2);
    const second = h.runner.runs[1]!;
    second.sink.log('stdout', 'still working\n', h.time.now());
    await waitForScreen('still working');
    await tmux('send-keys', '-t', 'kiln', 'C-c');
    await waitForScreen('press Ctrl-C again');
    await tmux('send-keys', '-t', 'kiln', 'C-c');
    expect(await exitStatus()).toBe(130);
    expect(await screen()).toContain(`kiln: left build ${second.input.build.id}`);
    second.finish({
      ok: false,
      code: 'cancelled',
      message: 'aborted: cancel',
      logTail: [],
      phaseSeconds: {},
      bootSeconds: null,
    });
  });

  it('exits 2 on a usage error and 3 when the daemon is gone, each with one line to act on', async () => {
    await appContext();
    await kilnInPane(['build', 'app', '-t', 'web:v2']);
    expect(await exitStatus()).toBe(2);
    expect(await screen()).toContain(
      'kiln: -t web:v2: the daemon tags images with the build id and "latest" only; use -t web',
    );
    await tmux('kill-server');
    await server.close();
    await kilnInPane(['builds']);
    expect(await exitStatus()).toBe(3);
    expect(await screen()).toMatch(
      /kiln: cannot reach the daemon at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
    );
  });
});
