import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { engineRequest } from './engine-request-fixture.js';
import { detectEngines } from '../../agent/detect-engines.js';
import type { EngineHooks } from '../../agent/engines/build-engine.js';
import { BuildKitEngine } from '../../agent/engines/buildkit-engine.js';
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
 * A stand-in for buildctl-daemonless.sh (BuildKit's binaries are not on these machines): it
 * records its argv and environment, replays a recorded rawjson progress stream on stderr,
 * writes the recorded metadata file where --metadata-file says, and exits with `code`.
 */
async function standInDaemonless(progress: string, code: number, sleep = 0): Promise<string> {
  const script = path.join(dir, 'buildctl-daemonless.sh');
  await writeFile(
    script,
    [
      '#!/bin/sh',
      `printf '%s\\n' "$@" > ${dir}/argv`,
      `printf '%s\\n%s\\n' "$BUILDKITD_FLAGS" "$DOCKER_CONFIG" > ${dir}/env`,
      'meta=""; prev=""',
      'for a in "$@"; do [ "$prev" = --metadata-file ] && meta="$a"; prev="$a"; done',
      `cat ${path.join(fixtures, progress)} >&2`,
      `[ -n "$meta" ] && cp ${path.join(fixtures, 'metadata-image-push.json')} "$meta"`,
      sleep > 0 ? `sleep ${sleep}` : ':',
      `exit ${code}`,
      '',
    ].join('\n'),
  );
  await chmod(script, 0o755);
  const buildctl = path.join(dir, 'buildctl');
  await writeFile(
    buildctl,
    '#!/bin/sh\necho "buildctl github.com/moby/buildkit v0.12.5 bac3f2b673f3f9d33e79046008e7a38e856b3dc6"\n',
  );
  await chmod(buildctl, 0o755);
  return script;
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

describe('BuildKitEngine (with a stand-in buildctl-daemonless.sh)', () => {
  it('streams progress as log lines and phases, and returns the metadata digest and base images', async () => {
    const daemonless = await standInDaemonless('rawjson-build-push-cache.jsonl', 0);
    const engine = new BuildKitEngine({
      daemonlessPath: daemonless,
      buildctlPath: path.join(dir, 'buildctl'),
    });
    const hooks = recordingHooks();
    const request = engineRequest({
      contextDir: dir,
      workDir: path.join(dir, 'work'),
      runDir: path.join(dir, 'run'),
    });
    const result = await engine.build(request, hooks);
    expect(await engine.version()).toBe('v0.12.5');
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
    const argv = (await readFile(path.join(dir, 'argv'), 'utf8')).trim().split('\n');
    expect(argv.slice(0, 3)).toEqual(['build', '--frontend', 'dockerfile.v0']);
    const env = (await readFile(path.join(dir, 'env'), 'utf8')).split('\n');
    expect(env[0]).toContain('--config /run/kiln/credentials/creds-1/buildkitd.toml');
    expect(env[1]).toBe('/run/kiln/credentials/creds-1/docker');
  });

  it('fails with build_failed and keeps the error lines when buildctl exits non-zero', async () => {
    const daemonless = await standInDaemonless('rawjson-run-failure.jsonl', 1);
    const engine = new BuildKitEngine({
      daemonlessPath: daemonless,
      buildctlPath: path.join(dir, 'buildctl'),
    });
    const hooks = recordingHooks();
    const err: unknown = await engine
      .build(
        engineRequest({
          contextDir: dir,
          workDir: path.join(dir, 'work'),
          runDir: path.join(dir, 'run'),
        }),
        hooks,
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailure);
    expect((err as BuildFailure).code).toBe('build_failed');
    expect(hooks.text).toContain('ERROR: process "/bin/sh -c exit 3"');
  });

  it('stops buildctl on cancel', async () => {
    const daemonless = await standInDaemonless('rawjson-run-failure.jsonl', 0, 30);
    const engine = new BuildKitEngine({
      daemonlessPath: daemonless,
      buildctlPath: path.join(dir, 'buildctl'),
      killGraceMs: 500,
    });
    const abort = new AbortController();
    const hooks = recordingHooks(abort.signal);
    const started = Date.now();
    const pending = engine.build(
      engineRequest({
        contextDir: dir,
        workDir: path.join(dir, 'work'),
        runDir: path.join(dir, 'run'),
      }),
      { ...hooks, log: (s, t) => (t.includes('sh: boom') && abort.abort(), hooks.log(s, t)) },
    );
    const err: unknown = await pending.catch((e: unknown) => e);
    expect((err as BuildFailure).message).toContain('cancelled');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('detectEngines', () => {
  it('lists BuildKit first when its binaries are on PATH, Buildah otherwise', async () => {
    await standInDaemonless('rawjson-run-failure.jsonl', 0);
    const buildah = path.join(dir, 'buildah');
    await writeFile(buildah, '#!/bin/sh\n');
    await chmod(buildah, 0o755);
    expect((await detectEngines(dir)).map((e) => e.name)).toEqual(['buildkit', 'buildah']);
    await rm(path.join(dir, 'buildctl'));
    expect((await detectEngines(dir)).map((e) => e.name)).toEqual(['buildah']);
  });
});
