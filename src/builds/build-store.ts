import type { Database, Statement, Transaction } from 'better-sqlite3';
import type { BuildEvent, BuildEventData } from './build-event.js';
import type {
  Build,
  BuildFailure,
  BuildRequest,
  BuildResult,
  BuildSource,
  BuildStatus,
} from './build.js';
import { AppError } from '../errors/app-error.js';

interface BuildRow {
  seq: number;
  id: string;
  tenant: string;
  status: string;
  request_json: string;
  source_json: string;
  repository: string;
  cache_repository: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  attempts: number;
  result_json: string | null;
  failure_json: string | null;
  timings_json: string;
}

interface EventRow {
  build_id: string;
  id: number;
  data_json: string;
  created_at: number;
}

/** Event payloads stored with a row write; log chunks go through appendLog and its cap. */
export type TransitionEventData = Exclude<BuildEventData, { type: 'log' }>;

/** One page of builds, newest first; `nextCursor` is null on the last page. */
export interface BuildPage {
  builds: Build[];
  nextCursor: string | null;
}

/** Maps a stored row to the domain type (the one place that knows the columns). */
function toBuild(row: BuildRow): Build {
  return {
    id: row.id,
    tenant: row.tenant,
    status: row.status as BuildStatus,
    request: JSON.parse(row.request_json) as BuildRequest,
    source: JSON.parse(row.source_json) as BuildSource,
    repository: row.repository,
    cacheRepository: row.cache_repository,
    createdAt: new Date(row.created_at),
    startedAt: row.started_at === null ? null : new Date(row.started_at),
    finishedAt: row.finished_at === null ? null : new Date(row.finished_at),
    attempts: row.attempts,
    result: row.result_json === null ? null : (JSON.parse(row.result_json) as BuildResult),
    failure: row.failure_json === null ? null : (JSON.parse(row.failure_json) as BuildFailure),
    timings: JSON.parse(row.timings_json) as Build['timings'],
  };
}

function toEvent(row: EventRow): BuildEvent {
  return {
    buildId: row.build_id,
    id: row.id,
    data: JSON.parse(row.data_json) as BuildEventData,
    createdAt: new Date(row.created_at),
  };
}

function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^s(\d{1,15})$/.exec(text);
  if (!m?.[1]) throw new AppError('INVALID_CURSOR');
  return Number(m[1]);
}

/**
 * Builds and their event log in SQLite. Statements are prepared once; every other part of the
 * daemon goes through this class to reach these tables.
 */
export class BuildStore {
  private readonly insertStmt: Statement;
  private readonly getStmt: Statement<[string], BuildRow>;
  private readonly updateStmt: Statement;
  private readonly byStatusStmt: Statement<[string], BuildRow>;
  private readonly lastEventStmt: Statement<[string], { id: number | null }>;
  private readonly insertEventStmt: Statement;
  private readonly eventsAfterStmt: Statement<[string, number, number], EventRow>;
  private readonly logStateStmt: Statement<[string], { log_bytes: number; log_truncated: number }>;
  private readonly setLogStateStmt: Statement<[number, number, string]>;
  private readonly lastLogsStmt: Statement<[string, number], EventRow>;
  private readonly pageStmt: Statement<[string, number, number], BuildRow>;
  private readonly pageByStatusStmt: Statement<[string, number, string, number], BuildRow>;
  private readonly setTimingsStmt: Statement<[string, string]>;
  // Transaction functions are built once: better-sqlite3 makes a new wrapper per call otherwise.
  private readonly appendEventsTx: Transaction<
    (buildId: string, data: readonly BuildEventData[], at: Date) => BuildEvent[]
  >;
  private readonly updateWithEventsTx: Transaction<
    (build: Build, data: readonly TransitionEventData[], at: Date) => BuildEvent[]
  >;
  private readonly insertWithEventsTx: Transaction<
    (build: Build, data: readonly TransitionEventData[], at: Date) => BuildEvent[]
  >;
  private readonly appendLogTx: Transaction<
    (
      buildId: string,
      data: Extract<BuildEventData, { type: 'log' }>,
      at: Date,
      maxBytes: number,
    ) => BuildEvent[]
  >;

  constructor(db: Database) {
    this.insertStmt = db.prepare(
      `INSERT INTO builds (id, tenant, status, request_json, source_json, repository,
         cache_repository, created_at, started_at, finished_at, attempts, result_json,
         failure_json, timings_json)
       VALUES (@id, @tenant, @status, @request_json, @source_json, @repository,
         @cache_repository, @created_at, @started_at, @finished_at, @attempts, @result_json,
         @failure_json, @timings_json)`,
    );
    this.getStmt = db.prepare('SELECT * FROM builds WHERE id = ?');
    this.updateStmt = db.prepare(
      `UPDATE builds SET status = @status, started_at = @started_at, finished_at = @finished_at,
         attempts = @attempts, result_json = @result_json, failure_json = @failure_json,
         timings_json = @timings_json
       WHERE id = @id`,
    );
    this.byStatusStmt = db.prepare('SELECT * FROM builds WHERE status = ? ORDER BY seq ASC');
    this.lastEventStmt = db.prepare('SELECT MAX(id) AS id FROM build_events WHERE build_id = ?');
    this.insertEventStmt = db.prepare(
      'INSERT INTO build_events (build_id, id, type, data_json, created_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.eventsAfterStmt = db.prepare(
      'SELECT * FROM build_events WHERE build_id = ? AND id > ? ORDER BY id ASC LIMIT ?',
    );
    this.logStateStmt = db.prepare('SELECT log_bytes, log_truncated FROM builds WHERE id = ?');
    this.setLogStateStmt = db.prepare(
      'UPDATE builds SET log_bytes = ?, log_truncated = ? WHERE id = ?',
    );
    this.lastLogsStmt = db.prepare(
      `SELECT * FROM build_events WHERE build_id = ? AND type = 'log' ORDER BY id DESC LIMIT ?`,
    );
    this.pageStmt = db.prepare(
      'SELECT * FROM builds WHERE tenant = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
    );
    this.pageByStatusStmt = db.prepare(
      'SELECT * FROM builds WHERE tenant = ? AND seq < ? AND status = ? ORDER BY seq DESC LIMIT ?',
    );
    this.setTimingsStmt = db.prepare('UPDATE builds SET timings_json = ? WHERE id = ?');
    this.appendEventsTx = db.transaction((buildId, data, at) =>
      this.appendEventsUnlocked(buildId, data, at),
    );
    this.updateWithEventsTx = db.transaction((build, data, at) => {
      this.updateStmt.run(this.mutableParams(build));
      return this.appendEventsUnlocked(build.id, data, at);
    });
    this.insertWithEventsTx = db.transaction((build, data, at) => {
      this.insertStmt.run(this.toParams(build));
      return this.appendEventsUnlocked(build.id, data, at);
    });
    this.appendLogTx = db.transaction((buildId, data, at, maxBytes) =>
      this.appendLogUnlocked(buildId, data, at, maxBytes),
    );
  }

  get(id: string): Build | null {
    const row = this.getStmt.get(id);
    return row ? toBuild(row) : null;
  }

  /**
   * Stores a new build and appends `events` to its log in one transaction (one commit): the
   * row and its events are stored together or, on any error, neither. Returns the events.
   */
  insertWithEvents(build: Build, events: readonly TransitionEventData[], at: Date): BuildEvent[] {
    return this.insertWithEventsTx(build, events, at);
  }

  /** Saves the mutable part of a build (status, times, attempts, result, failure, timings). */
  update(build: Build): void {
    this.updateStmt.run(this.mutableParams(build));
  }

  /**
   * Saves the mutable part of a build and appends `events` to its log in one transaction (one
   * commit), so a status and the events that tell it are stored together or, on any error,
   * neither. Returns the stored events in order.
   */
  updateWithEvents(build: Build, events: readonly TransitionEventData[], at: Date): BuildEvent[] {
    return this.updateWithEventsTx(build, events, at);
  }

  /** Saves only a build's timings (what changes once its after-finish steps are done). */
  updateTimings(build: Build): void {
    this.setTimingsStmt.run(JSON.stringify(build.timings), build.id);
  }

  /** Builds in `status`, oldest first (the order they were accepted). */
  listByStatus(status: BuildStatus): Build[] {
    return this.byStatusStmt.all(status).map(toBuild);
  }

  /** A tenant's builds, newest first, optionally filtered by status. */
  list(options: {
    tenant: string;
    status?: BuildStatus | undefined;
    limit: number;
    cursor?: string | undefined;
  }): BuildPage {
    const before =
      options.cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(options.cursor);
    const rows =
      options.status === undefined
        ? this.pageStmt.all(options.tenant, before, options.limit + 1)
        : this.pageByStatusStmt.all(options.tenant, before, options.status, options.limit + 1);
    const page = rows.slice(0, options.limit);
    const last = page.at(-1);
    return {
      builds: page.map(toBuild),
      nextCursor: rows.length > options.limit && last ? encodeCursor(last.seq) : null,
    };
  }

  /** Appends one event with the next id of its build, in one transaction; returns it. */
  appendEvent(buildId: string, data: BuildEventData, at: Date): BuildEvent {
    const [event] = this.appendEventsTx(buildId, [data], at);
    if (event === undefined) throw new Error('appendEvent stored no event');
    return event;
  }

  /**
   * Appends a log chunk unless the build's log is over `maxBytes`; the first chunk that would
   * pass the cap is replaced by one truncation marker. Returns the stored events (0 or 1).
   */
  appendLog(
    buildId: string,
    data: Extract<BuildEventData, { type: 'log' }>,
    at: Date,
    maxBytes: number,
  ): BuildEvent[] {
    return this.appendLogTx(buildId, data, at, maxBytes);
  }

  /** Events with id > `afterId`, oldest first, at most `limit`. */
  eventsAfter(buildId: string, afterId: number, limit: number): BuildEvent[] {
    return this.eventsAfterStmt.all(buildId, afterId, limit).map(toEvent);
  }

  /** The last `count` log events of a build, oldest first. */
  lastLogEvents(buildId: string, count: number): BuildEvent[] {
    return this.lastLogsStmt.all(buildId, count).map(toEvent).reverse();
  }

  private appendLogUnlocked(
    buildId: string,
    data: Extract<BuildEventData, { type: 'log' }>,
    at: Date,
    maxBytes: number,
  ): BuildEvent[] {
    const state = this.logStateStmt.get(buildId);
    if (!state || state.log_truncated === 1) return [];
    const bytes = Buffer.byteLength(data.data, 'utf8');
    if (state.log_bytes + bytes > maxBytes) {
      this.setLogStateStmt.run(state.log_bytes, 1, buildId);
      const marker: BuildEventData = {
        type: 'log',
        stream: 'system',
        data: `[kiln] log truncated: over ${maxBytes} bytes; further output is dropped\n`,
        at: data.at,
        truncated: true,
      };
      return this.appendEventsUnlocked(buildId, [marker], at);
    }
    this.setLogStateStmt.run(state.log_bytes + bytes, 0, buildId);
    return this.appendEventsUnlocked(buildId, [data], at);
  }

  /** Appends events with the next ids of their build; the caller holds the transaction. */
  private appendEventsUnlocked(
    buildId: string,
    data: readonly BuildEventData[],
    at: Date,
  ): BuildEvent[] {
    let id = this.lastEventStmt.get(buildId)?.id ?? 0;
    const createdAt = at.getTime();
    return data.map((d) => {
      id += 1;
      this.insertEventStmt.run(buildId, id, d.type, JSON.stringify(d), createdAt);
      return { buildId, id, data: d, createdAt: at };
    });
  }

  private toParams(build: Build): Record<string, string | number | null> {
    return {
      ...this.mutableParams(build),
      tenant: build.tenant,
      request_json: JSON.stringify(build.request),
      source_json: JSON.stringify(build.source),
      repository: build.repository,
      cache_repository: build.cacheRepository,
      created_at: build.createdAt.getTime(),
    };
  }

  /** The columns update() writes: the request (an inline Dockerfile) is not re-serialized. */
  private mutableParams(build: Build): Record<string, string | number | null> {
    return {
      id: build.id,
      status: build.status,
      started_at: build.startedAt?.getTime() ?? null,
      finished_at: build.finishedAt?.getTime() ?? null,
      attempts: build.attempts,
      result_json: build.result ? JSON.stringify(build.result) : null,
      failure_json: build.failure ? JSON.stringify(build.failure) : null,
      timings_json: JSON.stringify(build.timings),
    };
  }
}
