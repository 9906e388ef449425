import type { BuildFailure, BuildResult, BuildStatus } from './build.js';
import type { TimeAccount } from './time-account.js';
import type { BuildPhase, LogStream } from '../../common/protocol/agent-messages.js';

/**
 * Streams of `log` events: the guest's three, and `network`, where the host reports each
 * connection an `egress` build's proxy refused (`denied 10.0.0.5:6379: private address`).
 */
export type BuildLogStream = LogStream | 'network';

/** Payloads of the stored build events (docs/contracts.md#build-events); heartbeats are not. */
export type BuildEventData =
  | { type: 'status'; status: BuildStatus }
  | { type: 'phase'; phase: BuildPhase }
  | { type: 'log'; stream: BuildLogStream; data: string; at: string; truncated?: true }
  | {
      type: 'result';
      status: 'ready' | 'failed' | 'cancelled';
      result: BuildResult | null;
      failure: BuildFailure | null;
      /**
       * Where the build's seconds went up to this status (absent on events stored before it
       * existed). The after-finish steps are not done yet: `afterFinish` is null here, and
       * GET /builds/:id shows them once they are.
       */
      timings?: TimeAccount;
    };

/** One stored event: `id` increases by one per build, starting at 1. */
export interface BuildEvent {
  buildId: string;
  id: number;
  data: BuildEventData;
  createdAt: Date;
}
