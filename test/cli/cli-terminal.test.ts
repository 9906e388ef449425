import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunOutcome } from '../../src/builds/build-runner.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { KilnPane } from '../helpers/cli-tmux-pane.js';
import { okOutcome } from '../helpers/fake-build-runner.js';

/**
 * `kiln` as a user runs it: in a real pseudo-terminal (a tmux pane), against the daemon's
 * HTTP app on loopback (the VM runner is the FakeBuildRunner stand-in, driven here). The test
 * reads the screen, types Ctrl-C and reads the exit status the pane recorded.
 */
let h: Harness;
let work: string;
const panes: KilnPane[] = [];

beforeEach(async () => {
  h = await createHarness();
  work = await mkdtemp(path.join(tmpdir(), 'kiln-cli-tty-'));
});
afterEach(async () => {
  for (const pane of panes.splice(0)) await pane.close();
  await h.close();
  await rm(work, { recursive: true, force: true });
});

async function kiln(args: string[]): Promise<KilnPane> {
  const pane = await KilnPane.start(work, args, {
    KILN_URL: h.url,
    KILN_TOKEN: await h.token('acme'),
  });
  panes.push(pane);
  return pane;
}

const cancelled: RunOutcome = {
  ok: false,
  code: 'cancelled',
  message: 'aborted: cancel',
  logTail: [],
  phaseSeconds: {},
};

async function appContext(): Promise<void> {
  const dir = path.join(work, 'app');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM busybox\nCOPY blob /blob\n');
  await writeFile(path.join(dir, 'blob'), randomBytes(2 * 1024 * 1024));
}

// Each case starts node + tsx in a pane: slow on loaded 2-core machines, hence the long limit.
describe('kiln in a real terminal', { timeout: 150_000 }, () => {
  it('draws the upload bar, shows the engine output, and exits 0 with the image on ready', async () => {
    await appContext();
    const pane = await kiln(['build', 'app', '-t', 'web']);
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    fake.sink.status('booting');
    fake.sink.status('building');
    fake.sink.log('stdout', 'STEP 1/2: FROM busybox\n', h.time.now());
    await pane.waitFor('STEP 1/2: FROM busybox');
    fake.finish(okOutcome(`acme/web:${fake.input.build.id}`));
    expect(await pane.exitStatus()).toBe(0);
    const text = await pane.screen();
    // The terminal gets cli-progress's bar (with rate and ETA), not the plain lines.
    expect(text).toMatch(/uploading context \[█+\] 100% 2\.0 MiB\/2\.0 MiB .*\/s ETA/);
    expect(text).not.toContain('uploading context: ');
    expect(text).toContain('=> ready');
    expect(text).toContain(`image  ${new URL(h.url).host}/acme/web:${fake.input.build.id}`);
  });

  it('Ctrl-C cancels the build and waits for cancelled (exit 130); twice leaves at once', async () => {
    await appContext();
    h.runner.holdAborts = true;
    const pane = await kiln(['build', 'app']);
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    fake.sink.log('stdout', 'working…\n', h.time.now());
    await pane.waitFor('working…');
    await pane.sendKeys('C-c');
    await pane.waitFor('press Ctrl-C again to leave without waiting');
    await eventually(() => fake.signal.aborted);
    fake.finish(cancelled);
    expect(await pane.exitStatus()).toBe(130);
    expect(await pane.screen()).toContain(`kiln: build ${fake.input.build.id} was cancelled`);

    const again = await kiln(['build', 'app']);
    await h.runner.waitForRuns(2);
    const second = h.runner.runs[1]!;
    second.sink.log('stdout', 'still working\n', h.time.now());
    await again.waitFor('still working');
    await again.sendKeys('C-c');
    await again.waitFor('press Ctrl-C again');
    await again.sendKeys('C-c');
    expect(await again.exitStatus()).toBe(130);
    expect(await again.screen()).toContain(`kiln: left build ${second.input.build.id}`);
    second.finish(cancelled);
  });

  it('exits 2 on a usage error and 3 when the daemon is gone, each with one line to act on', async () => {
    await appContext();
    const usage = await kiln(['build', 'app', '--allow-host', 'registry.npmjs.org']);
    expect(await usage.exitStatus()).toBe(2);
    expect(await usage.screen()).toContain(
      'kiln: --allow-host: an allow-list only applies to egress builds; add --network egress',
    );
    await h.stop();
    const gone = await kiln(['builds']);
    expect(await gone.exitStatus()).toBe(3);
    expect(await gone.screen()).toMatch(
      /kiln: cannot reach the daemon at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): is it running\?/,
    );
  });
});
