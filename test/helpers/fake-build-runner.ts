import type {
  BuildRunner,
  BuildRunSink,
  RecoveryReport,
  RunInput,
  RunOutcome,
} from '../../src/builds/build-runner.js';

/** One run the fake received; the test drives it through `sink` and ends it with `finish`. */
export interface FakeRun {
  input: RunInput;
  sink: BuildRunSink;
  signal: AbortSignal;
  finish(outcome: RunOutcome): void;
}

/**
 * A hand-written stand-in for the VM build runner (the VM boundary belongs to the VM runner
 * and cannot run in these unit tests). Runs stay open until the test finishes them; an abort
 * resolves the run as the real runner would (`aborted`), unless `holdAborts` is set, in which
 * case the test decides when the "VM is gone".
 */
export class FakeBuildRunner implements BuildRunner {
  readonly runs: FakeRun[] = [];
  readonly events: string[] = [];
  recoverCalls = 0;
  closed = false;
  holdAborts = false;
  private waiters: (() => void)[] = [];

  run(input: RunInput, sink: BuildRunSink, signal: AbortSignal): Promise<RunOutcome> {
    this.events.push(`run:${input.build.id}`);
    return new Promise<RunOutcome>((resolve) => {
      let settled = false;
      const finish = (outcome: RunOutcome) => {
        if (settled) return;
        settled = true;
        this.events.push(`end:${input.build.id}`);
        resolve(outcome);
      };
      signal.addEventListener('abort', () => {
        if (this.holdAborts) return;
        finish({ ok: false, aborted: true, logTail: [], phaseSeconds: {} });
      });
      this.runs.push({ input, sink, signal, finish });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  recover(): Promise<RecoveryReport> {
    this.recoverCalls += 1;
    this.events.push('recover');
    return Promise.resolve({ killedProcesses: 0, removedPaths: 0 });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** The run of a build (throws when it was not started). */
  runOf(buildId: string): FakeRun {
    const run = this.runs.find((r) => r.input.build.id === buildId);
    if (!run) throw new Error(`no run for ${buildId}`);
    return run;
  }

  /** Resolves once at least `count` runs have started. */
  async waitForRuns(count: number): Promise<void> {
    while (this.runs.length < count) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

/** A successful outcome as the VM runner reports it. */
export function okOutcome(pushedRef: string): RunOutcome {
  return {
    ok: true,
    imageDigest: `sha256:${'a'.repeat(64)}`,
    pushedRef,
    provenance: {
      sourceSha256: 'b'.repeat(64),
      treeSha256: 'c'.repeat(64),
      lockfiles: {},
      baseImages: {},
      engine: { name: 'buildah', version: '1.28' },
    },
    phaseSeconds: { extracting: 1, building: 3, pushing: 1 },
  };
}
