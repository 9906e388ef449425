import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rawjsonFixtures } from './buildkit-progress-replay.js';
import { engineRequest } from './engine-request-fixture.js';
import type { EngineHooks } from '../../agent/engines/build-engine.js';
import { BuildKitEngine } from '../../agent/engines/buildkit-engine.js';
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
 * Test double for buildctl-daemonless.sh (buildkitd needs root and a runc worker, which a
 * unit test does not start): it writes captured buildctl stderr, copies the captured metadata
 * file where `--metadata-file` says, and exits with `code`.
 */
async function replayingDaemonless(progress: string, code: number): Promise<string> {
  const script = path.join(dir, 'buildctl-daemonless.sh');
  await writeFile(
    script,
    [
      '#!/bin/sh',
      'meta=""; prev=""',
      'for a in "$@"; do [ "$prev" = --metadata-file ] && meta="$a"; prev="$a"; done',
      `cat ${path.join(rawjsonFixtures, progress)} >&2`,
      `[ -n "$meta" ] && cp ${path.join(rawjsonFixtures, 'push-metadata.json')} "$meta"`,
      `exit ${code}`,
      '',
    ].join('\n'),
  );
  await chmod(script, 0o755);
  return script;
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

function request() {
  return engineRequest({
    contextDir: dir,
    workDir: path.join(dir, 'work'),
    runDir: path.join(dir, 'run'),
  });
}

function textOf(logs: { stream: LogStream; text: string }[], stream: LogStream): string {
  return logs
    .filter((l) => l.stream === stream)
    .map((l) => l.text)
    .join('');
}

describe('BuildKitEngine logs (captured buildctl output through a stand-in daemonless script)', () => {
  it("fails with BuildKit's own reason, not the exit code", async () => {
    const engine = new BuildKitEngine({
      daemonlessPath: await replayingDaemonless('run-failure.jsonl', 1),
      buildctlPath: '/bin/false',
    });
    const hooks = recordingHooks();
    const err: unknown = await engine.build(request(), hooks).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailure);
    expect((err as BuildFailure).code).toBe('build_failed');
    expect((err as BuildFailure).message).toBe(
      'failed to solve: process "/bin/sh -c echo \\"about to fail\\"; echo \\"sh: boom\\" >&2; exit 3" did not complete successfully: exit code: 3',
    );
    expect(textOf(hooks.logs, 'stdout')).toContain('#5 about to fail\n');
    expect(textOf(hooks.logs, 'stderr')).toContain('#5 sh: boom\n#5 ERROR: process');
  });

  it('streams a pushed build per stream, with the final lines held back until buildctl ended', async () => {
    const engine = new BuildKitEngine({
      daemonlessPath: await replayingDaemonless('first-build-of-cache-scope.jsonl', 0),
      buildctlPath: '/bin/false',
    });
    const hooks = recordingHooks();
    const result = await engine.build(request(), hooks);
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
