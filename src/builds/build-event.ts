import type { BuildFailure, BuildResult, BuildStatus } from './build.js';
import type { BuildPhase, LogStream } from '../../common/protocol/agent-messages.js';

/** Payloads of the stored build events (docs/contracts.md#build-events); heartbeats are not. */
export type BuildEventData =
  | { type: 'status'; status: BuildStatus }
  | { type: 'phase'; phase: BuildPhase }
  | { type: 'log'; stream: LogStream; data: string; at: string; truncated?: true }
  | {
      type: 'result';
      status: 'ready' | 'failed' | 'cancelled';
      result: BuildResult | null;
      failure: BuildFailure | null;
    };

/** One stored event: `id` increases by one per build, starting at 1. */
export interface BuildEvent {
  buildId: string;
  id: number;
  data: BuildEventData;
  createdAt: Date;
}
