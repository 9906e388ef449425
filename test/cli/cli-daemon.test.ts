import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CacheDisks } from '../../src/caches/cache-disks.js';
import { CacheStore } from '../../src/caches/cache-store.js';
import { configFile } from '../../src/cli/cli-config.js';
import type { CliIo } from '../../src/cli/cli-io.js';
import { runCli } from '../../src/cli/run-cli.js';
import { createLogger } from '../../src/telemetry/create-logger.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { okOutcome } from '../helpers/fake-build-runner.js';

const execFileAsync = promisify(execFile);

/**
 * The CLI in-process against the daemon's real HTTP app on a loopback port (createHarness:
 * real manager, store, event log and routes; the VM runner is the named FakeBuildRunner
 * stand-in, driven by each test).
 */
let h: Harness;
let work: string;
let token: string;

beforeEach(async () => {
  h = await createHarness();
  work = await mkdtemp(path.join(tmpdir(), 'kiln-cli-work-'));
  token = await h.token('acme');
});
afterEach(async () => {
  await h.close();
  await rm(work, { recursive: true, force: true });
});

interface Run {
  code: Promise<number>;
  out: string[];
  err: string[];
  interrupt(): void;
  stdout(): string;
  stderr(): string;
}

function start(args: string[], env: Record<string, string> = {}, io: Partial<CliIo> = {}): Run {
  const out: string[] = [];
  const err: string[] = [];
  let handler: (() => void) | null = null;
  const code = runCli(args, {
    env: { KILN_URL: h.url, KILN_TOKEN: token, HOME: work, ...env },
    cwd: work,
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    clock: h.time,
    sleep: () => Promise.resolve(),
    onInterrupt: (fn) => {
      handler = fn;
      return () => {
        handler = null;
      };
    },
    ...io,
  });
  return {
    code,
    out,
    err,
    interrupt: () => handler?.(),
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  };
}

async function context(files: Record<string, string>): Promise<string> {
  const dir = path.join(work, 'app');
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

const DOCKERFILE = 'FROM busybox\nCOPY . /app\n';

describe('kiln build against a daemon', () => {
  it('sends --secret values from a file and the environment for this build only', async () => {
    await context({ Dockerfile: DOCKERFILE });
    await writeFile(path.join(work, 'npmrc'), '//registry/:_authToken=file-value\n');
    const run = start(
      ['build', 'app', '--secret', 'id=npmrc,src=npmrc', '--secret', 'id=api,env=API_KEY'],
      { API_KEY: 'env-value' },
    );
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    expect(fake.input.secrets).toEqual({
      npmrc: '//registry/:_authToken=file-value\n',
      api: 'env-value',
    });
    expect(fake.input.build.request.buildSecretIds).toEqual(['npmrc', 'api']);
    expect(h.secrets.list('acme')).toEqual([]);
    fake.finish(okOutcome(`acme/${fake.input.build.id}:${fake.input.build.id}`));
    expect(await run.code).toBe(0);
  });

  it('uploads the ignored-filtered context with every field, follows to ready, exits 0', async () => {
    await context({
      Dockerfile: DOCKERFILE,
      '.dockerignore': 'node_modules\n*.log\n',
      'src/index.js': 'console.log(1)\n',
      'node_modules/x/index.js': 'x',
      'debug.log': 'noise',
    });
    const run = start([
      'build',
      'app',
      '-t',
      'web',
      '-t',
      'team/api:2.0',
      '--build-arg',
      'V=1',
      '--cache-scope',
      'main',
      '--memory',
      '1g',
      '--cpus',
      '1',
      '--timeout',
      '10m',
      '--network',
      'egress',
      '--allow-host',
      'registry.npmjs.org',
      '--allow-host',
      '*.Example.com',
    ]);
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    const { build } = fake.input;
    expect(build.request).toMatchObject({
      dockerfilePath: 'Dockerfile',
      dockerfile: null,
      buildArgs: { V: '1' },
      cacheScope: 'main',
      memoryMb: 1024,
      cpus: 1,
      timeoutSeconds: 600,
      networkMode: 'egress',
      allowedHosts: ['registry.npmjs.org', '*.example.com'],
      imageName: null,
      imageTags: [
        { name: 'web', tag: 'latest' },
        { name: 'team/api', tag: '2.0' },
      ],
    });
    expect(build.repository).toBe('acme/web');
    const { stdout: listing } = await execFileAsync('tar', ['-tzf', build.source.path]);
    expect(listing.split('\n').filter(Boolean).sort()).toEqual(
      ['./', '.dockerignore', 'Dockerfile', 'src/', 'src/index.js'].filter((n) => n !== './'),
    );
    h.time.advance(500);
    fake.sink.status('booting');
    fake.sink.mark('vm_start', h.time.now());
    fake.sink.mark('boot', h.time.now());
    h.time.advance(2000);
    fake.sink.mark('agent', h.time.now());
    fake.sink.status('building');
    fake.sink.phase('extracting');
    h.time.advance(1000);
    fake.sink.phase('building');
    fake.sink.log('stdout', 'STEP 1/2: FROM busybox\nSTEP 2/2: COPY', h.time.now());
    fake.sink.log('stdout', ' . /app\n', h.time.now());
    h.time.advance(3000);
    fake.sink.status('pushing');
    fake.sink.phase('pushing');
    h.time.advance(1000);
    fake.finish(okOutcome(`acme/web:${build.id}`));
    expect(await run.code).toBe(0);
    const err = run.stderr();
    expect(err).toContain(`build ${build.id} accepted (booting`);
    // A free slot: the build boots the moment it is accepted, so queued took no time.
    expect(err).toContain('=> booting the build VM\n');
    expect(err).toContain('=> building (booting the build VM took 2.5s)');
    expect(err).toContain('=> unpacking the source');
    expect(err).toContain('   STEP 1/2: FROM busybox\n   STEP 2/2: COPY . /app\n');
    const host = new URL(h.url).host;
    expect(err).toContain(
      `image  ${host}/acme/web:${build.id}\nimage  ${host}/acme/web:latest\nimage  ${host}/acme/team/api:2.0\n`,
    );
    expect(err).toContain(`digest sha256:${'a'.repeat(64)}`);
    expect(err).toMatch(/timings .*boot 2\.0s · extracting 1\.0s · building 3\.0s · pushing 1\.0s/);
    expect(err).toMatch(/uploading context: .*\nuploaded context: /);
  });

  it('sends the Dockerfile inline when .dockerignore excludes it or -f names one outside', async () => {
    await context({ Dockerfile: DOCKERFILE, '.dockerignore': 'Dockerfile\n', 'a.txt': 'a' });
    await writeFile(path.join(work, 'other.Dockerfile'), 'FROM busybox\nRUN true\n');
    const first = start(['build', 'app', '--detach']);
    const second = start(['build', 'app', '-f', 'other.Dockerfile', '--detach']);
    expect([await first.code, await second.code]).toEqual([0, 0]);
    const requests = [first, second].map(
      (r) => h.manager.get('acme', r.stdout().trim()).build.request,
    );
    expect(requests.map((r) => r.dockerfile)).toEqual([DOCKERFILE, 'FROM busybox\nRUN true\n']);
  });

  it('--quiet prints only every pushed reference with the digest, one a line', async () => {
    await context({ Dockerfile: DOCKERFILE });
    const run = start(['build', 'app', '-q', '-t', 'web:v1', '-t', 'api:v1']);
    await h.runner.waitForRuns(1);
    const { build } = h.runner.runs[0]!.input;
    h.runner.runs[0]!.finish(okOutcome(`acme/web:${build.id}`));
    expect(await run.code).toBe(0);
    const host = new URL(h.url).host;
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(run.stdout()).toBe(
      [`acme/web:${build.id}`, 'acme/web:v1', 'acme/api:v1']
        .map((ref) => `${host}/${ref}@${digest}\n`)
        .join(''),
    );
    expect(run.stderr()).toBe('');
  });

  it('exits 1 with the error code and the log tail when the build fails', async () => {
    await context({ Dockerfile: DOCKERFILE });
    const run = start(['build', 'app', '--quiet']);
    await h.runner.waitForRuns(1);
    h.runner.runs[0]!.finish({
      ok: false,
      code: 'build_failed',
      message: 'RUN exited with 1',
      logTail: ['step 3', 'boom'],
      phaseSeconds: {},
    });
    expect(await run.code).toBe(1);
    expect(run.stdout()).toBe('');
    expect(run.stderr()).toContain('   step 3\n   boom\n');
    expect(run.stderr()).toMatch(
      /kiln: build \S+ failed \(build_failed\): RUN exited with 1 — full log: kiln logs /,
    );
  });

  it('--output json prints each event as one JSON line on stdout, nothing else', async () => {
    await context({ Dockerfile: DOCKERFILE });
    const run = start(['build', 'app', '--output', 'json']);
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    fake.sink.status('booting');
    fake.sink.log('stdout', 'hi\n', h.time.now());
    fake.finish(okOutcome(`acme/${fake.input.build.id}:${fake.input.build.id}`));
    expect(await run.code).toBe(0);
    const events = run
      .stdout()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: number; event: string; build_id: string });
    expect(events.map((e) => e.event)).toEqual(['status', 'status', 'log', 'status', 'result']);
    expect(events.map((e) => e.id)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(events.map((e) => e.build_id))).toEqual(new Set([fake.input.build.id]));
    expect(run.stderr()).toBe('');
  });

  it('Ctrl-C cancels on the daemon and waits for cancelled (exit 130)', async () => {
    await context({ Dockerfile: DOCKERFILE });
    h.runner.holdAborts = true;
    const run = start(['build', 'app']);
    await h.runner.waitForRuns(1);
    const fake = h.runner.runs[0]!;
    await eventually(() => run.stderr().includes('accepted'));
    run.interrupt();
    await eventually(() => fake.signal.aborted);
    expect(run.stderr()).toContain('press Ctrl-C again to leave without waiting');
    // Still waiting: the VM is not gone yet.
    let settled = false;
    void run.code.then(() => {
      settled = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    fake.finish({
      ok: false,
      code: 'cancelled',
      message: 'aborted: cancel',
      logTail: [],
      phaseSeconds: {},
    });
    expect(await run.code).toBe(130);
    expect(run.stderr()).toContain('was cancelled');
    expect(h.manager.get('acme', fake.input.build.id).build.status).toBe('cancelled');
  });

  it('a second Ctrl-C leaves at once while the daemon is still cancelling', async () => {
    await context({ Dockerfile: DOCKERFILE });
    h.runner.holdAborts = true;
    const run = start(['build', 'app']);
    await h.runner.waitForRuns(1);
    await eventually(() => run.stderr().includes('accepted'));
    run.interrupt();
    await eventually(() => h.runner.runs[0]!.signal.aborted);
    run.interrupt();
    expect(await run.code).toBe(130);
    expect(run.stderr()).toContain('left build');
    const fake = h.runner.runs[0]!;
    expect(h.manager.get('acme', fake.input.build.id).build.status).not.toBe('cancelled');
    fake.finish({
      ok: false,
      code: 'cancelled',
      message: 'aborted: cancel',
      logTail: [],
      phaseSeconds: {},
    });
  });

  it('resumes a cut event stream with Last-Event-ID: no line lost, none repeated', async () => {
    await context({ Dockerfile: DOCKERFILE });
    const proxy = await cuttingProxy(h.port);
    try {
      const run = start(['build', 'app'], { KILN_URL: proxy.url });
      await h.runner.waitForRuns(1);
      const fake = h.runner.runs[0]!;
      for (const line of ['one', 'two', 'three'])
        fake.sink.log('stdout', `${line}\n`, h.time.now());
      await eventually(() => run.stderr().includes('   three\n'));
      proxy.cutAll();
      for (const line of ['four', 'five']) fake.sink.log('stdout', `${line}\n`, h.time.now());
      fake.finish(okOutcome(`acme/${fake.input.build.id}:${fake.input.build.id}`));
      expect(await run.code).toBe(0);
      const logLines = run
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('   '));
      expect(logLines).toEqual(['   one', '   two', '   three', '   four', '   five']);
      expect(run.stderr()).toMatch(/event stream dropped; resuming after event \d+/);
      expect(proxy.connections()).toBeGreaterThanOrEqual(3);
    } finally {
      await proxy.close();
    }
  });

  it("refuses a bad field with the daemon's code (exit 2) and leaves nothing behind", async () => {
    await context({ Dockerfile: DOCKERFILE });
    const run = start(['build', 'app', '--cache-scope', 'Not/Valid']);
    expect(await run.code).toBe(2);
    expect(run.stderr()).toContain('INVALID_CACHE_SCOPE');
    expect(h.buildRows()).toBe(0);
  });

  it('exits 3 when the daemon is unreachable or refuses the token', async () => {
    await context({ Dockerfile: DOCKERFILE });
    const gone = start(['build', 'app'], { KILN_URL: await deadUrl() });
    expect(await gone.code).toBe(3);
    expect(gone.stderr()).toMatch(
      /\nkiln: cannot reach the daemon at .*ECONNREFUSED.*kiln login URL`\n$/,
    );
    const refused = start(['builds'], { KILN_TOKEN: 'not-a-token' });
    expect(await refused.code).toBe(3);
    expect(refused.stderr()).toContain('refused the token (INVALID_TOKEN)');
  });
});

describe('kiln builds, logs, cancel, secrets and login', () => {
  it('lists builds by status, prints logs and cancels', async () => {
    await context({ Dockerfile: DOCKERFILE });
    const detached = start(['build', 'app', '-d']);
    expect(await detached.code).toBe(0);
    const id = detached.stdout().trim();
    await h.runner.waitForRuns(1);
    h.runner.runs[0]!.sink.status('booting');
    h.runner.runs[0]!.sink.log('stdout', 'hello log\n', h.time.now());
    const logs = start(['logs', id]);
    expect(await logs.code).toBe(0);
    expect(logs.stdout()).toBe('hello log\n');
    const follow = start(['logs', id, '-f']);
    await eventually(() => follow.stdout() === 'hello log\n');
    const listed = start(['builds', '--status', 'booting']);
    expect(await listed.code).toBe(0);
    expect(listed.stdout()).toMatch(
      new RegExp(`^ID +STATUS +IMAGE +CREATED +TOOK\n${id} +booting +acme/${id} +\\S+ +-\n$`),
    );
    const none = start(['builds', '--status', 'ready']);
    expect(await none.code).toBe(0);
    expect([none.stdout(), none.stderr()]).toEqual(['', 'no ready builds\n']);
    const cancel = start(['cancel', id]);
    expect(await cancel.code).toBe(0);
    expect(cancel.stdout()).toContain(`${id}: cancelling`);
    expect(await follow.code).toBe(0);
    const cancelled = start(['builds', '--status', 'cancelled', '--output', 'json']);
    expect(await cancelled.code).toBe(0);
    expect((JSON.parse(cancelled.stdout()) as { id: string }[]).map((b) => b.id)).toEqual([id]);
    const unknown = start(['logs', 'b_nope']);
    expect(await unknown.code).toBe(2);
    expect(unknown.stderr()).toContain('BUILD_NOT_FOUND');
  });

  it('sets, lists and removes secrets; the value never comes back', async () => {
    await writeFile(path.join(work, 'npmrc'), 'token=s3cret');
    const set = start(['secrets', 'set', 'npmrc', '--from-file', 'npmrc']);
    expect(await set.code).toBe(0);
    expect(set.stdout()).toContain('secret npmrc created');
    const fromEnv = start(['secrets', 'set', 'api', '--from-env', 'API_KEY'], { API_KEY: 'k' });
    expect(await fromEnv.code).toBe(0);
    expect(h.secrets.values('acme', ['npmrc', 'api'])).toEqual({
      npmrc: 'token=s3cret',
      api: 'k',
    });
    const ls = start(['secrets', 'ls']);
    expect(await ls.code).toBe(0);
    expect(ls.stdout()).toMatch(/^ID\s+UPDATED\napi\s+\S+\nnpmrc\s+\S+\n$/);
    expect(ls.stdout()).not.toContain('s3cret');
    const rm1 = start(['secrets', 'rm', 'api']);
    expect(await rm1.code).toBe(0);
    const again = start(['secrets', 'rm', 'api']);
    expect(await again.code).toBe(2);
    expect(again.stderr()).toContain('SECRET_NOT_FOUND');
  });

  it('lists cache disks with scope, size and last use, as a table or JSON, and removes them', async () => {
    // The daemon's cache disks are filled by the VM runner, which is a stand-in here: a second
    // CacheDisks on the daemon's data directory and database forks and commits one for real.
    const caches = new CacheDisks({
      root: path.join(h.dataDir, 'caches'),
      store: new CacheStore(h.db),
      clock: h.time,
      logger: createLogger('silent'),
      defaultSizeBytes: h.config.caches.defaultSizeBytes,
      gcThresholdPercent: h.config.caches.gcThresholdPercent,
    });
    const empty = start(['caches']);
    expect(await empty.code).toBe(0);
    expect(empty.stderr()).toContain('no cache disks');
    const fork = await caches.fork('acme', 'main', 'b_cachefill');
    expect(await fork.commit()).toBe(true);
    const listed = start(['caches']);
    expect(await listed.code).toBe(0);
    const size = `${(h.config.caches.defaultSizeBytes / 1024 ** 3).toFixed(1)} GiB`;
    expect(listed.stdout()).toMatch(
      new RegExp(
        String.raw`^SCOPE +USED +SIZE +LAST USED +LAST BUILD\nmain +\d[\d.]* \S+ +${size} +\S+ +b_cachefill\n$`,
      ),
    );
    const json = start(['caches', '--output', 'json']);
    expect(await json.code).toBe(0);
    expect(JSON.parse(json.stdout())).toEqual([
      expect.objectContaining({
        scope: 'main',
        size_bytes: h.config.caches.defaultSizeBytes,
        last_build_id: 'b_cachefill',
      }),
    ]);
    const rm1 = start(['caches', 'rm', 'main']);
    expect(await rm1.code).toBe(0);
    expect(rm1.stdout()).toBe('cache main removed\n');
    expect(await caches.list('acme')).toEqual([]);
    const again = start(['caches', 'rm', 'main']);
    expect(await again.code).toBe(2);
    expect(again.stderr()).toContain('CACHE_NOT_FOUND');
  });

  it('rotates the webhook signing secret with an overlap, as text or JSON', async () => {
    const old = h.webhooks.settings('acme').signingSecret;
    const rotated = start(['webhooks', 'rotate-secret', '--overlap', '2h']);
    expect(await rotated.code).toBe(0);
    const fresh = h.webhooks.settings('acme').signingSecret;
    expect(fresh).not.toBe(old);
    const until = new Date(h.time.now().getTime() + 7_200_000).toISOString();
    expect(rotated.stdout()).toBe(
      `new signing secret: ${fresh}\ndeliveries carry signatures from both secrets until ${until}; switch your receivers to the new one before then\n`,
    );
    expect(h.webhooks.signingSecrets('acme')).toEqual([fresh, old]);
    const json = start(['webhooks', 'rotate-secret', '--overlap', '0', '--output', 'json']);
    expect(await json.code).toBe(0);
    expect(JSON.parse(json.stdout())).toEqual({
      default_url: null,
      signing_secret: h.webhooks.settings('acme').signingSecret,
      previous_secret_expires_at: null,
    });
    expect(h.webhooks.signingSecrets('acme')).toHaveLength(1);
    const tooLong = start(['webhooks', 'rotate-secret', '--overlap', '8d']);
    expect(await tooLong.code).toBe(2);
    expect(tooLong.stderr()).toContain('RESOURCE_OUT_OF_RANGE');
    const bad = start(['webhooks', 'rotate-secret', '--overlap', 'soon']);
    expect(await bad.code).toBe(2);
    const readOnly = start(['webhooks', 'rotate-secret'], {
      KILN_TOKEN: await h.token('acme', ['builds:read']),
    });
    expect(await readOnly.code).toBe(3);
    expect(readOnly.stderr()).toContain('missing scope');
  });

  it('login checks the token, stores URL and token 0600, and later commands use them', async () => {
    const xdg = path.join(work, 'xdg');
    const env = { XDG_CONFIG_HOME: xdg, KILN_URL: '', KILN_TOKEN: '' };
    const bad = start(['login', h.url, '--token', 'nope'], env);
    expect(await bad.code).toBe(3);
    const login = start(['login', `${h.url}/`, '--token', token], env);
    expect(await login.code).toBe(0);
    const file = configFile({ XDG_CONFIG_HOME: xdg });
    expect(file).toBe(path.join(xdg, 'kiln', 'config.json'));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ url: h.url, token });
    const out: string[] = [];
    const code = await runCli(['builds'], {
      env: { XDG_CONFIG_HOME: xdg },
      stdout: (t) => out.push(t),
      stderr: () => undefined,
    });
    expect(code).toBe(0);
    const overridden = await runCli(['builds'], {
      env: { XDG_CONFIG_HOME: xdg, KILN_TOKEN: 'nope' },
      stdout: () => undefined,
      stderr: () => undefined,
    });
    expect(overridden).toBe(3);
  });
});

/** A TCP relay in front of the daemon that can cut every open connection at once. */
async function cuttingProxy(port: number) {
  const open = new Set<net.Socket>();
  let connections = 0;
  const relay = net.createServer((client) => {
    connections += 1;
    const upstream = net.connect(port, '127.0.0.1');
    open.add(client);
    client.on('close', () => {
      open.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`,
    connections: () => connections,
    cutAll: () => {
      for (const socket of open) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        relay.close(() => {
          resolve();
        });
      }),
  };
}

/** A loopback URL nothing listens on: a port just bound and released. */
async function deadUrl(): Promise<string> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) =>
    probe.close(() => {
      resolve();
    }),
  );
  return `http://127.0.0.1:${port}`;
}
