import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ApiEnv } from './api-env.js';
import { requireApiToken } from './require-api-token.js';
import { framesFrom, SseEventHub, sseFrame } from './sse-event-hub.js';
import type { Clock } from '../../common/time/clock.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { BuildManager } from '../builds/build-manager.js';
import { TERMINAL_STATUSES } from '../builds/build.js';
import type { EventLog } from '../builds/event-log.js';
import { AppError } from '../errors/app-error.js';

/** Events read from the store per batch: what one subscriber holds in memory at most. */
const BATCH = 100;
/**
 * Bytes of live frames one follower may have waiting for its socket; past it the follower
 * drops them and reads on from the store (a slow client costs bounded memory, loses nothing).
 */
const MAX_PENDING_BYTES = 1024 * 1024;
const MAX_TAIL_LINES = 10_000;

export interface BuildEventRoutesDeps {
  manager: BuildManager;
  events: EventLog;
  apiTokens: ApiTokenService;
  clock: Clock;
  /** Milliseconds between heartbeats on a followed stream (15 s in production). */
  heartbeatMs: number;
}

function parseLastEventId(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 0;
  if (!/^\d{1,15}$/.test(value.trim())) {
    throw new AppError('INVALID_FIELD', 'Last-Event-ID must be an event id.');
  }
  return Number(value.trim());
}

/** GET /builds/:id/events (SSE, docs/contracts.md#build-events) and GET /builds/:id/logs. */
export function buildEventRoutes(deps: BuildEventRoutesDeps): Hono<ApiEnv> {
  if (!Number.isFinite(deps.heartbeatMs) || deps.heartbeatMs <= 0) {
    throw new RangeError('heartbeatMs must be positive');
  }
  const app = new Hono<ApiEnv>();
  const canRead = requireApiToken(deps.apiTokens, 'builds:read');
  const hub = new SseEventHub(deps.events);

  app.get('/builds/:id/events', canRead, (c) => {
    const { build } = deps.manager.get(c.var.principal.tenant, c.req.param('id'));
    const follow = c.req.query('follow') === 'true' || c.req.query('follow') === '1';
    let lastId = parseLastEventId(c.req.header('last-event-id') ?? c.req.query('last_event_id'));
    return streamSSE(c, async (stream) => {
      // A follower reads from the store until it has caught up (`fromStore`), then sends the
      // hub's live batches that continue its stream. Flags are set from callbacks; one object
      // so the loop re-reads them after each await.
      const st: {
        wake: (() => void) | null;
        fromStore: boolean;
        /** Live frames waiting for the socket, and the id of the last event they hold. */
        pending: Buffer[];
        pendingBytes: number;
        pendingFinal: boolean;
        queuedId: number;
        heartbeatDue: boolean;
        aborted: boolean;
      } = {
        wake: null,
        fromStore: true,
        pending: [],
        pendingBytes: 0,
        pendingFinal: false,
        queuedId: lastId,
        heartbeatDue: false,
        aborted: false,
      };
      const idle = () =>
        st.pending.length === 0 && !st.heartbeatDue && !st.aborted && !st.fromStore;
      const isAborted = () => st.aborted;
      const poke = () => {
        const w = st.wake;
        st.wake = null;
        w?.();
      };
      const toStore = () => {
        st.fromStore = true;
        st.pending = [];
        st.pendingBytes = 0;
        st.pendingFinal = false;
      };
      const stop = follow
        ? hub.follow(build.id, (batch) => {
            if (st.fromStore || batch.lastId <= st.queuedId) return;
            if (
              batch.firstId > st.queuedId + 1 ||
              st.pendingBytes + batch.frames.length > MAX_PENDING_BYTES
            ) {
              toStore();
            } else {
              const frames = framesFrom(batch, st.queuedId + 1);
              st.pending.push(frames);
              st.pendingBytes += frames.length;
              st.pendingFinal = batch.final;
              st.queuedId = batch.lastId;
            }
            poke();
          })
        : () => undefined;
      stream.onAbort(() => {
        st.aborted = true;
        poke();
      });
      const timer = follow
        ? setInterval(() => {
            st.heartbeatDue = true;
            poke();
          }, deps.heartbeatMs)
        : null;
      try {
        for (;;) {
          if (st.aborted) return;
          if (st.fromStore) {
            const batch = deps.events.read(build.id, lastId, BATCH);
            let final = false;
            for (const event of batch) {
              await stream.write(sseFrame(event));
              lastId = event.id;
              if (event.data.type === 'result') final = true;
            }
            if (final || isAborted()) return;
            if (batch.length === BATCH) continue;
            if (!follow) return;
            // Ended meanwhile: read on to the final event; resuming after it, nothing will come.
            const status = deps.manager.get(c.var.principal.tenant, build.id).build.status;
            if (TERMINAL_STATUSES.has(status)) {
              if (batch.length === 0) return;
              continue;
            }
            // Caught up: from here on the hub's batches carry every new event.
            st.fromStore = false;
            st.queuedId = lastId;
          } else if (st.pending.length > 0) {
            const frames = st.pending;
            const final = st.pendingFinal;
            const upTo = st.queuedId;
            st.pending = [];
            st.pendingBytes = 0;
            for (const f of frames) await stream.write(f);
            lastId = upTo;
            // If it fell behind while writing, the store has what was dropped, after lastId.
            if (final) return;
            continue;
          } else if (
            TERMINAL_STATUSES.has(deps.manager.get(c.var.principal.tenant, build.id).build.status)
          ) {
            // Its last events may still be on their way through the hub: read them instead.
            toStore();
            continue;
          }
          if (idle()) {
            await new Promise<void>((resolve) => {
              st.wake = resolve;
            });
          }
          if (isAborted()) return;
          if (st.heartbeatDue) {
            st.heartbeatDue = false;
            await stream.writeSSE({
              event: 'heartbeat',
              data: JSON.stringify({ at: deps.clock.now().toISOString() }),
            });
          }
        }
      } finally {
        if (timer) clearInterval(timer);
        stop();
      }
    });
  });

  app.get('/builds/:id/logs', canRead, (c) => {
    const { build } = deps.manager.get(c.var.principal.tenant, c.req.param('id'));
    const rawTail = c.req.query('tail');
    let tail: number | null = null;
    if (rawTail !== undefined) {
      if (!/^\d{1,6}$/.test(rawTail) || Number(rawTail) > MAX_TAIL_LINES) {
        throw new AppError('INVALID_FIELD', `tail must be between 0 and ${MAX_TAIL_LINES}.`);
      }
      tail = Number(rawTail);
    }
    c.header('Content-Type', 'text/plain; charset=utf-8');
    if (tail !== null) {
      const lines: string[] = [];
      let after = 0;
      for (;;) {
        const batch = deps.events.read(build.id, after, BATCH * 10);
        for (const event of batch) {
          after = event.id;
          if (event.data.type !== 'log') continue;
          const parts = event.data.data.split('\n');
          if (parts.at(-1) === '') parts.pop();
          lines.push(...parts);
          if (lines.length > tail) lines.splice(0, lines.length - tail);
        }
        if (batch.length < BATCH * 10) break;
      }
      return c.body(lines.length === 0 ? '' : `${lines.join('\n')}\n`);
    }
    let after = 0;
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const batch = deps.events.read(build.id, after, BATCH);
        if (batch.length === 0) {
          controller.close();
          return;
        }
        after = batch.at(-1)?.id ?? after;
        const text = batch.map((e) => (e.data.type === 'log' ? e.data.data : '')).join('');
        controller.enqueue(encoder.encode(text));
      },
    });
    return c.body(body);
  });

  return app;
}
