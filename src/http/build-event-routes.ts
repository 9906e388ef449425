import { Hono } from 'hono';
import type { ApiEnv } from './api-env.js';
import { requireApiToken } from './require-api-token.js';
import { SseEventHub } from './sse-event-hub.js';
import { SseFollower } from './sse-follower.js';
import { openSseSink } from './sse-sink.js';
import type { Clock } from '../../common/time/clock.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { BuildManager } from '../builds/build-manager.js';
import { TERMINAL_STATUSES } from '../builds/build.js';
import type { EventLog } from '../builds/event-log.js';
import { AppError } from '../errors/app-error.js';

/** Events read from the store per batch by GET /builds/:id/logs. */
const BATCH = 100;
/**
 * Bytes of frames one follower may have waiting for its socket: it is handed at most a
 * quarter of this per write (views of shared frames) and more only once the socket drains,
 * so a slow client costs at most this and loses nothing (it reads on from where it is).
 */
const MAX_PENDING_BYTES = 1024 * 1024;
const WRITE_BYTES = MAX_PENDING_BYTES / 4;
/**
 * A followed build's recent frames kept in memory (shared by its followers); the pages of
 * stored frames kept for those further behind, over every build (about 256 KiB a page, so a
 * page read again for a reader the cache no longer serves costs about one write); both in
 * buffers of 64 KiB, so a view handed to a socket keeps alive at most one buffer more than it
 * shows; and the bytes handed to all followers' sockets at once (each follower's write is its
 * share of them, 16 KiB to 256 KiB): what the fan-out holds is bounded by bytes, whatever the
 * number of followers. Smaller writes cost more than they save: with 1000 followers at
 * 5 MB/s, 16 KiB writes doubled the daemon's CPU and its heap churn (bench/event-fanout).
 */
const HUB = {
  windowBytes: 16 * 1024 * 1024,
  pageBytes: 256 * 1024,
  maxPageEvents: 256,
  pageCacheBytes: 16 * 1024 * 1024,
  segmentBytes: 64 * 1024,
  pendingBytes: 256 * 1024 * 1024,
  minWriteBytes: 16 * 1024,
};
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
  const hub = new SseEventHub(deps.events, HUB);

  app.get('/builds/:id/events', canRead, (c) => {
    const tenant = c.var.principal.tenant;
    const { build } = deps.manager.get(tenant, c.req.param('id'));
    const follow = c.req.query('follow') === 'true' || c.req.query('follow') === '1';
    const lastId = parseLastEventId(c.req.header('last-event-id') ?? c.req.query('last_event_id'));
    const logger = c.var.logger;
    const follower = new SseFollower({
      hub,
      buildId: build.id,
      lastId,
      follow,
      writeBytes: WRITE_BYTES,
      heartbeatMs: deps.heartbeatMs,
      heartbeat: () =>
        Buffer.from(
          `event: heartbeat\ndata: ${JSON.stringify({ at: deps.clock.now().toISOString() })}\n\n`,
        ),
      isFinished: () => TERMINAL_STATUSES.has(deps.manager.get(tenant, build.id).build.status),
      onError: (err) => {
        logger.error({ err }, 'event stream failed');
      },
    });
    const { sink, response } = openSseSink(c, MAX_PENDING_BYTES, {
      onDrain: () => {
        follower.drained();
      },
      onClose: () => {
        follower.closed();
      },
    });
    follower.start(sink);
    return response;
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
