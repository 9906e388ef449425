import type {
  BuildRunner,
  BuildRunSink,
  RecoveryReport,
  RunInput,
  RunOutcome,
} from '../src/builds/build-runner.js';

/** Log output the stand-in guest writes during each run. */
export interface StandInLogs {
  bytesPerSecond: number;
  /** Bytes of `data` per log event (the agent sends chunks of up to 64 KiB). */
  chunkBytes: number;
  seconds: number;
  /** Called with each chunk's sequence number and its send time (ms, performance.timeOrigin based). */
  onChunk?: (seq: number, sentAtMs: number) => void;
}

/** The wall clock in ms with sub-ms resolution, comparable across processes on one host. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A stand-in for the VM build runner in the benchmarks (the VM boundary: these benchmarks
 * measure the daemon's queue and event path, not microVMs). Each run optionally waits until
 * `release()` is called, optionally logs at a fixed rate through the real sink (so the
 * manager, EventLog, SQLite and SSE paths are the real ones), then succeeds at once.
 *
 * A log chunk's data starts `#<seq> t=<ms> ` so a follower can check order and latency
 * without parsing the payload; the rest is 100-byte lines of filler.
 */
export class BuildRunnerStandIn implements BuildRunner {
  runsStarted = 0;
  runsFinished = 0;
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;

  constructor(private readonly options: { logs?: StandInLogs; held?: boolean } = {}) {
    if (options.held === true) this.hold();
  }

  /** Runs started from now on wait until release(). */
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  /** Lets every held run (and every later one) go on. */
  release(): void {
    this.openGate?.();
    this.gate = null;
    this.openGate = null;
  }

  async run(input: RunInput, sink: BuildRunSink, signal: AbortSignal): Promise<RunOutcome> {
    this.runsStarted += 1;
    if (this.gate) await this.gate;
    if (this.options.logs) {
      sink.status('building');
      await emitLogChunks(
        this.options.logs,
        (data, at) => {
          sink.log('stdout', data, at);
        },
        signal,
      );
    }
    this.runsFinished += 1;
    if (signal.aborted) {
      return { ok: false, aborted: true, logTail: [], phaseSeconds: {} };
    }
    return {
      ok: true,
      imageDigest: `sha256:${'a'.repeat(64)}`,
      pushedRef: `${input.build.repository}:${input.build.id}`,
      provenance: {
        sourceSha256: input.build.source.sha256,
        treeSha256: 'c'.repeat(64),
        lockfiles: {},
        baseImages: {},
        engine: { name: 'buildah', version: 'stand-in' },
      },
      phaseSeconds: {},
    };
  }

  recover(): Promise<RecoveryReport> {
    return Promise.resolve({ killedProcesses: 0, removedPaths: 0 });
  }

  close(): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

/**
 * Emits the chunks of `logs` on a fixed schedule until done or aborted; each chunk's data
 * starts `#<seq> t=<send time in ms> `. Every chunk that is due is sent in one turn of the
 * event loop (as the agent's messages arrive, several per socket read, when the host is
 * late), then the loop yields until the next one is due.
 */
export async function emitLogChunks(
  logs: StandInLogs,
  emit: (data: string, at: Date) => void,
  signal: AbortSignal,
): Promise<void> {
  const line = `${'x'.repeat(99)}\n`;
  const filler = line.repeat(Math.ceil(logs.chunkBytes / line.length) + 1);
  const intervalMs = (logs.chunkBytes / logs.bytesPerSecond) * 1000;
  const total = Math.round((logs.seconds * logs.bytesPerSecond) / logs.chunkBytes);
  const started = nowMs();
  let seq = 0;
  while (seq < total && !signal.aborted) {
    const wait = started + seq * intervalMs - nowMs();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    else await new Promise((resolve) => setImmediate(resolve));
    for (; seq < total && started + seq * intervalMs <= nowMs(); seq++) {
      const sentAt = nowMs();
      const head = `#${seq} t=${sentAt.toFixed(3)} `;
      emit(head + filler.slice(0, logs.chunkBytes - head.length), new Date(sentAt));
      logs.onChunk?.(seq, sentAt);
    }
  }
}
