import { type BuildEnvironment, describeFailure, runBuild } from './build/run-build.js';
import type { AgentChannel } from './channel/agent-channel.js';
import type { BuildEngine } from './engines/build-engine.js';
import { LogSink } from './logs/log-sink.js';
import { readHostMessages } from './protocol/host-message-reader.js';
import { MessageWriter } from './protocol/message-writer.js';
import { PROTOCOL_VERSION, type StartMessage } from '../common/protocol/agent-messages.js';
import type { BuildJob } from '../common/protocol/build-job.js';
import type { Clock } from '../common/time/clock.js';

export interface ServeBuildDeps {
  channel: AgentChannel;
  clock: Clock;
  agentVersion: string;
  /** Engines present in the image, best first. */
  engines: readonly BuildEngine[];
  /** Reads build.json (from the config volume in the guest). */
  loadJob: () => Promise<BuildJob>;
  environment: BuildEnvironment;
  /**
   * Syncs and unmounts the cache disk once the engine has exited; resolves true when it is
   * clean. Null without a cache disk. Called only after a successful build: the host commits
   * the disk only when the result says it was released.
   */
  releaseCache: (() => Promise<boolean>) | null;
  /** Diagnostics for the guest console (never the channel). */
  diag: (line: string) => void;
}

/** How serving the build ended. */
export type ServeBuildOutcome = 'result_sent' | 'host_gone' | 'cancelled_before_start';

/**
 * Serves the one build of this VM to the host over the agent channel: `hello`, wait for
 * `start`, run the build while honouring `cancel`, send `result`. Bad host lines are reported
 * (as system log lines) and skipped; the host closing the channel cancels a running build and
 * ends without a result. (The host's side of the same channel is src/vm/agent-session.ts.)
 */
export async function serveBuild(deps: ServeBuildDeps): Promise<ServeBuildOutcome> {
  const { channel, clock, diag } = deps;
  const writer = new MessageWriter(channel.output);
  const logs = new LogSink(writer, clock);
  const abort = new AbortController();
  const state = { hostGone: false };
  let started = false;
  let resolveStart: (m: StartMessage | null) => void = () => undefined;
  const startReceived = new Promise<StartMessage | null>((r) => {
    resolveStart = r;
  });

  readHostMessages(channel.input, {
    message: (m) => {
      switch (m.type) {
        case 'start':
          if (started) {
            void logs.system('ignored a second start message').catch(() => undefined);
            return;
          }
          started = true;
          resolveStart(m);
          return;
        case 'cancel':
          diag(`cancel: ${m.reason}`);
          abort.abort();
          resolveStart(null);
          return;
      }
    },
    problem: (detail) => {
      diag(`host message skipped: ${detail}`);
      if (!state.hostGone)
        void logs.system(`agent: skipped a host message (${detail})`).catch(() => undefined);
    },
    end: (partial) => {
      diag(`host channel closed${partial ? ' inside a message' : ''}`);
      state.hostGone = true;
      abort.abort();
      resolveStart(null);
    },
  });

  try {
    await writer.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      agentVersion: deps.agentVersion,
      engines: deps.engines.map((e) => e.name),
    });
  } catch (err) {
    diag(`cannot send hello: ${(err as Error).message}`);
    return 'host_gone';
  }

  const start = await startReceived;
  if (start === null) {
    if (state.hostGone) return 'host_gone';
    await writer.send({
      type: 'result',
      ok: false,
      code: 'cancelled',
      message: 'the build was cancelled before it started',
      logTail: [],
      phaseSeconds: {},
    });
    await writer.flush();
    return 'cancelled_before_start';
  }

  let job: BuildJob;
  try {
    job = await deps.loadJob();
  } catch (err) {
    const { message } = describeFailure(err);
    await writer.send({
      type: 'result',
      ok: false,
      code: 'internal',
      message: `cannot read build.json: ${message}`,
      logTail: [],
      phaseSeconds: {},
    });
    await writer.flush();
    return 'result_sent';
  }

  const result = await runBuild({
    job,
    start,
    environment: deps.environment,
    engines: deps.engines,
    phase: (phase, at) => writer.send({ type: 'phase', phase, at }),
    logs,
    clock,
    signal: abort.signal,
  });
  if (state.hostGone) return 'host_gone';
  if (result.ok && deps.releaseCache !== null) {
    // Its own phase: a sync of a large cache disk takes seconds the host would otherwise
    // see only as the agent's unreported time.
    const since = clock.now().getTime();
    await writer.send({ type: 'phase', phase: 'syncing_cache', at: since }).catch(() => undefined);
    result.cacheSynced = await deps.releaseCache();
    result.phaseSeconds.syncing_cache = Math.max(0, clock.now().getTime() - since) / 1000;
  }
  try {
    await writer.send(result);
    await writer.flush();
  } catch (err) {
    diag(`cannot send the result: ${(err as Error).message}`);
    return 'host_gone';
  }
  return 'result_sent';
}
