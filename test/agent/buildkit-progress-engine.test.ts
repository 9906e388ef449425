import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rawjsonFixtures } from './buildkit-progress-replay.js';
import { engineRequest } from './engine-request-fixture.js';
import type { EngineHooks } from '../../agent/engines/build-engine.js';
import { BuildKitEngine, type BuildKitEngineOptions } from '../../agent/engines/buildkit-engine.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import type { BuildPhase, LogStream } from '../../common/protocol/agent-messages.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-buildkit-logs-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Test doubles for BuildKit's processes (the real rootless buildkitd runs in the guest, see
 * test/e2e/buildkit.e2e.test.ts): `rootlesskit` runs the command after its flags, `buildkitd`
 * waits for SIGTERM, and `buildctl` answers `debug workers` and, for `build`, writes captured
 * buildctl stderr, copies the captured metadata file where `--metadata-file` says, and exits
 * with `code`.
 */
async function replayingBuildKit(progress: string, code: number): Promise<BuildKitEngineOptions> {
  const put = async (name: string, lines: string[]): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, [...lines, ''].join('\n'));
    await chmod(file, 0o755);
    return file;
  };
  return {
    rootlesskitPath: await put('rootlesskit', [
      '#!/bin/sh',
      'while [ "${1#--}" != "$1" ]; do shift; done',
      'exec "$@"',
    ]),
    buildkitdPath: await put('buildkitd', [
      '#!/bin/sh',
      "trap 'exit 0' TERM",
      'while :; do sleep 0.1; done',
    ]),
    buildctlPath: await put('buildctl', [
      '#!/bin/sh',
      '[ "$3" = debug ] && exit 0',
      'meta=""; prev=""',
      'for a in "$@"; do [ "$prev" = --metadata-file ] && meta="$a"; prev="$a"; done',
      `cat ${path.join(rawjsonFixtures, progress)} >&2`,
      `[ -n "$meta" ] && cp ${path.join(rawjsonFixtures, 'push-metadata.json')} "$meta"`,
      `exit ${code}`,
    ]),
    user: null,
    runtimeBase: path.join(dir, 'run-user'),
    killGraceMs: 500,
  };
}

function recordingHooks(): EngineHooks & {
  phases: BuildPhase[];
  logs: { stream: LogStream; text: string }[];
} {
  const hooks = {
    phases: [] as BuildPhase[],
    logs: [] as { stream: LogStream; text: string }[],
    phase: (p: BuildPhase) => {
      hooks.phases.push(p);
      return Promise.resolve();
    },
    log: (stream: LogStream, text: string) => {
      hooks.logs.push({ stream, text });
      return Promise.resolve();
    },
    signal: new AbortController().signal,
  };
  return hooks;
}

async function request() {
  const toml = path.join(dir, 'buildkitd.toml');
  await writeFile(toml, '');
  return engineRequest({
    contextDir: dir,
    workDir: path.join(dir, 'work'),
    runDir: path.join(dir, 'run'),
    credentials: { ...engineRequest().credentials, buildkitdToml: toml },
  });
}

function textOf(logs: { stream: LogStream; text: string }[], stream: LogStream): string {
  return logs
    .filter((l) => l.stream === stream)
    .map((l) => l.text)
    .join('');
}

describe('BuildKitEngine logs (captured buildctl output through stand-in BuildKit processes)', () => {
  it("fails with BuildKit's own reason, not the exit code", async () => {
    const engine = new BuildKitEngine(await replayingBuildKit('run-failure.jsonl', 1));
    const hooks = recordingHooks();
    const err: unknown = await engine.build(await request(), hooks).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailure);
    expect((err as BuildFailure).code).toBe('build_failed');
    expect((err as BuildFailure).message).toBe(
      'failed to solve: process "/bin/sh -c echo \\"about to fail\\"; echo \\"sh: boom\\" >&2; exit 3" did not complete successfully: exit code: 3',
    );
    expect(textOf(hooks.logs, 'stdout')).toContain('#5 about to fail\n');
    expect(textOf(hooks.logs, 'stderr')).toContain('#5 sh: boom\n#5 ERROR: process');
  });

  it('streams a pushed build per stream, with the final lines held back until buildctl ended', async () => {
    const engine = new BuildKitEngine(
      await replayingBuildKit('first-build-of-cache-scope.jsonl', 0),
    );
    const hooks = recordingHooks();
    const result = await engine.build(await request(), hooks);
    expect(result.digest).toBe(
      'sha256:c979a406677262bce2db2b74b07669605990926ee950aa6a4baad28e9d40cd3b',
    );
    expect(hooks.phases).toEqual(['building', 'pushing', 'exporting_cache']);
    const stdout = textOf(hooks.logs, 'stdout');
    expect(stdout).toContain(
      '#4 cache: no cache yet for 127.0.0.1:33577/acme/cache:main (first build of this scope)\n',
    );
    expect(stdout.endsWith('#14 preparing build cache for export 0.1s done\n#14 DONE 0.1s\n')).toBe(
      true,
    );
    expect(textOf(hooks.logs, 'stderr')).toBe('#9 warning: to stderr\n#9 last stderr line\n');
  });
});
