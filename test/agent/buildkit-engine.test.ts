import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { engineRequest } from './engine-request-fixture.js';
import { detectEngines } from '../../agent/detect-engines.js';
import type { EngineHooks, EngineRequest } from '../../agent/engines/build-engine.js';
import { BuildKitEngine, type BuildKitEngineOptions } from '../../agent/engines/buildkit-engine.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import type { BuildPhase } from '../../common/protocol/agent-messages.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/buildkit');

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-buildkit-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Stand-ins for BuildKit's binaries (boundary doubles: the real ones run in the guest, see
 * test/e2e/buildkit.e2e.test.ts): `rootlesskit` runs the command after its flags; `buildkitd`
 * records its argv and environment, marks itself ready and waits for SIGTERM; `buildctl`
 * answers `--version` and `debug workers` (once buildkitd is ready), and for `build` records
 * its argv, replays a recorded rawjson progress stream on stderr, writes the recorded
 * metadata file where --metadata-file says, and exits with `code`.
 */
async function standIns(progress: string, code: number, sleep = 0): Promise<BuildKitEngineOptions> {
  const put = async (name: string, lines: string[]): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, [...lines, ''].join('\n'));
    await chmod(file, 0o755);
    return file;
  };
  const rootlesskitPath = await put('rootlesskit', [
    '#!/bin/sh',
    `printf '%s\\n' "$@" > ${dir}/rootlesskit-argv`,
    'while [ "${1#--}" != "$1" ]; do shift; done',
    'exec "$@"',
  ]);
  const buildkitdPath = await put('buildkitd', [
    '#!/bin/sh',
    `printf '%s\\n' "$@" > ${dir}/buildkitd-argv`,
    `printf '%s\\n%s\\n' "$XDG_RUNTIME_DIR" "$DOCKER_CONFIG" > ${dir}/buildkitd-env`,
    `echo started >> ${dir}/buildkitd-starts`,
    `trap 'rm -f ${dir}/ready; exit 0' TERM`,
    `touch ${dir}/ready`,
    'while :; do sleep 0.1; done',
  ]);
  const buildctlPath = await put('buildctl', [
    '#!/bin/sh',
    'if [ "$1" = --version ]; then',
    '  echo "buildctl github.com/moby/buildkit v0.24.0 b772c318368090fb2ffc9c0fed92e0a35bf82389"',
    '  exit 0',
    'fi',
    `[ "$3" = debug ] && exec test -e ${dir}/ready`,
    `printf '%s\\n' "$@" > ${dir}/argv`,
    `printf '%s\\n' "$DOCKER_CONFIG" > ${dir}/env`,
    'meta=""; prev=""',
    'for a in "$@"; do [ "$prev" = --metadata-file ] && meta="$a"; prev="$a"; done',
    `cat ${path.join(fixtures, progress)} >&2`,
    `[ -n "$meta" ] && cp ${path.join(fixtures, 'metadata-image-push.json')} "$meta"`,
    sleep > 0 ? `sleep ${sleep}` : ':',
    `exit ${code}`,
  ]);
  return {
    buildctlPath,
    buildkitdPath,
    rootlesskitPath,
    user: null,
    runtimeBase: path.join(dir, 'run-user'),
    killGraceMs: 500,
  };
}

/** An engine request whose directories and buildkitd.toml are under the test directory. */
async function localRequest(): Promise<EngineRequest> {
  const toml = path.join(dir, 'buildkitd.toml');
  await writeFile(toml, '[registry."10.0.2.100:5000"]\n  http = true\n');
  return engineRequest({
    contextDir: dir,
    workDir: path.join(dir, 'work'),
    runDir: path.join(dir, 'run'),
    credentials: { ...engineRequest().credentials, buildkitdToml: toml },
  });
}

function recordingHooks(signal = new AbortController().signal): EngineHooks & {
  phases: BuildPhase[];
  text: string;
} {
  const hooks = {
    phases: [] as BuildPhase[],
    text: '',
    phase: (p: BuildPhase) => {
      hooks.phases.push(p);
      return Promise.resolve();
    },
    log: (_s: string, t: string) => {
      hooks.text += t;
      return Promise.resolve();
    },
    signal,
  };
  return hooks;
}

describe('BuildKitEngine (with stand-ins for rootlesskit, buildkitd and buildctl)', () => {
  it('streams progress as log lines and phases, and returns the metadata digest and base images', async () => {
    const engine = new BuildKitEngine(await standIns('rawjson-build-push-cache.jsonl', 0));
    const hooks = recordingHooks();
    const request = await localRequest();
    const result = await engine.build(request, hooks);
    expect(await engine.version()).toBe('v0.24.0');
    expect(hooks.phases).toEqual(['building', 'pushing', 'exporting_cache']);
    expect(hooks.text).toContain('#7 hello from kiln\n');
    expect(result).toEqual({
      digest: 'sha256:4c1e9d2f7a65b0b8e8a71c2b7d3b0e6f3e2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c',
      imageRef: '10.0.2.100:5000/acme/web:b_abc',
      baseImages: {
        'docker.io/library/busybox:latest':
          'sha256:78b2d57c4d2a1c6b2a9b79ef9a0e3fd86ac86c7c9e0d2e0a7b3a1f9b9e3bd2c1',
      },
    });
    const runtimeDir = path.join(dir, 'run-user', String(process.getuid?.() ?? 0));
    const socket = path.join(runtimeDir, 'buildkit', 'buildkitd.sock');
    const argv = (await readFile(path.join(dir, 'argv'), 'utf8')).trim().split('\n');
    expect(argv.slice(0, 5)).toEqual([
      '--addr',
      `unix://${socket}`,
      'build',
      '--frontend',
      'dockerfile.v0',
    ]);
    expect((await readFile(path.join(dir, 'env'), 'utf8')).trim()).toBe(
      '/run/kiln/credentials/creds-1/docker',
    );
    const daemonArgv = (await readFile(path.join(dir, 'buildkitd-argv'), 'utf8')).split('\n');
    expect(daemonArgv).toContain(path.join(dir, 'work', 'buildkit', 'rootless'));
    const config = path.join(runtimeDir, 'buildkit', 'buildkitd.toml');
    expect(daemonArgv).toContain(config);
    // buildkitd reads its own copy of the config; it never sees the credentials directory.
    expect(await readFile(config, 'utf8')).toContain('http = true');
    expect(await readFile(path.join(dir, 'buildkitd-env'), 'utf8')).toBe(`${runtimeDir}\n\n`);
    expect(hooks.text).toMatch(/rootless buildkitd ready in \d+\.\d s/);
    // The daemon is stopped once the build is over.
    expect(existsSync(path.join(dir, 'ready'))).toBe(false);
  });

  it('starts buildkitd once in start(), builds on it, and stops it when the build ends', async () => {
    const engine = new BuildKitEngine(await standIns('rawjson-build-push-cache.jsonl', 0));
    const hooks = recordingHooks();
    const request = await localRequest();
    await engine.start(request, hooks);
    expect(existsSync(path.join(dir, 'ready'))).toBe(true);
    expect(hooks.text).toMatch(/rootless buildkitd ready in/);
    await engine.build(request, hooks);
    expect((await readFile(path.join(dir, 'buildkitd-starts'), 'utf8')).trim().split('\n')).toEqual(
      ['started'],
    );
    expect(existsSync(path.join(dir, 'ready'))).toBe(false);
  });

  it('stops a started buildkitd on cancel, before any build', async () => {
    const engine = new BuildKitEngine(await standIns('rawjson-build-push-cache.jsonl', 0));
    const abort = new AbortController();
    await engine.start(await localRequest(), recordingHooks(abort.signal));
    expect(existsSync(path.join(dir, 'ready'))).toBe(true);
    abort.abort();
    const deadline = Date.now() + 5000;
    while (existsSync(path.join(dir, 'ready')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(existsSync(path.join(dir, 'ready'))).toBe(false);
  });

  it('fails with build_failed and keeps the error lines when buildctl exits non-zero', async () => {
    const engine = new BuildKitEngine(await standIns('rawjson-run-failure.jsonl', 1));
    const hooks = recordingHooks();
    const err: unknown = await engine.build(await localRequest(), hooks).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailure);
    expect((err as BuildFailure).code).toBe('build_failed');
    expect(hooks.text).toContain('ERROR: process "/bin/sh -c exit 3"');
  });

  it('stops buildctl on cancel', async () => {
    const engine = new BuildKitEngine(await standIns('rawjson-run-failure.jsonl', 0, 30));
    const abort = new AbortController();
    const hooks = recordingHooks(abort.signal);
    const started = Date.now();
    const pending = engine.build(await localRequest(), {
      ...hooks,
      log: (s, t) => (t.includes('sh: boom') && abort.abort(), hooks.log(s, t)),
    });
    const err: unknown = await pending.catch((e: unknown) => e);
    expect((err as BuildFailure).message).toContain('cancelled');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('detectEngines', () => {
  it('lists BuildKit first when its binaries are on PATH, Buildah otherwise', async () => {
    await standIns('rawjson-run-failure.jsonl', 0);
    const buildah = path.join(dir, 'buildah');
    await writeFile(buildah, '#!/bin/sh\n');
    await chmod(buildah, 0o755);
    expect((await detectEngines(dir)).map((e) => e.name)).toEqual(['buildkit', 'buildah']);
    await rm(path.join(dir, 'buildctl'));
    expect((await detectEngines(dir)).map((e) => e.name)).toEqual(['buildah']);
  });
});
