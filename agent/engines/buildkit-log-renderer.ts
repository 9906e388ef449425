import { formatBytes } from './buildkit-bytes.js';
import { cacheImportRef, isMissingCache, missingCacheNote } from './buildkit-cache-import.js';
import { isCancellation } from './buildkit-failure.js';
import {
  timeMicros,
  type SolveStatus,
  type SolveVertex,
  type SolveVertexLog,
  type SolveVertexStatus,
} from './buildkit-solve-status.js';
import type { LogStream } from '../../common/protocol/agent-messages.js';

/** The streams an engine writes. */
export type EngineStream = Extract<LogStream, 'stdout' | 'stderr'>;

/** Text for one log stream; lines end with "\n". */
export interface LogChunk {
  stream: EngineStream;
  text: string;
}

/** A status that is still running is shown again only after this long (BuildKit's plain mode). */
const OPEN_STATUS_EVERY_US = 5_000_000;

interface Interval {
  start: number;
  stop: number | null;
}

interface VertexState {
  name: string;
  /** Digests of the vertices that take this one as an input. */
  dependents: Set<string>;
  /** Plain-style step number, given when the vertex is first shown (0: not yet). */
  index: number;
  /** Keyed by the interval's start as BuildKit wrote it: each record repeats its interval. */
  intervals: Map<string, Interval>;
  /** Start of the first interval (µs). */
  firstStart: number | null;
  cached: boolean;
  error: string | null;
  /** The header line is the latest thing shown for this vertex (no final line after it). */
  open: boolean;
  /** Its final line (DONE, CACHED, ERROR…) was shown and nothing came after. */
  finished: boolean;
  /** Status ids started and not completed. */
  openStatuses: Set<string>;
  /** Status ids shown as done. */
  doneStatuses: Set<string>;
  /** When a still-open status was last shown (µs), per id. */
  statusShownAt: Map<string, number>;
  /** A log line cut in the middle, per stream. */
  partial: Record<EngineStream, string>;
}

/**
 * Renders BuildKit SolveStatus records as the lines of `buildctl --progress plain`
 * (util/progress/progressui/printer.go), on the stream each belongs to:
 *
 * - `#N name` when step N starts, `#N <status id> [bytes] [time] done` when one of its
 *   statuses ends (an amount only when BuildKit gave one, never `0`), its logs as `#N line`
 *   on the step's own stream (record `stream` 1 → stdout, 2 → stderr), then `#N DONE 1.2s`,
 *   `#N CACHED`, `#N ERROR: …` or `#N CANCELED`.
 * - Headers, statuses and final lines on stdout; errors, cancellations and warnings on stderr.
 * - A step's final line comes after all of its lines: it waits while a status of the step is
 *   open, and, because BuildKit reopens a source step (the image of a FROM is resolved, then
 *   pulled, then unpacked, each its own interval), until the build has moved past it (a step
 *   that takes it as an input started; for a step nothing takes as input, a step first started
 *   after it ended) or the stream ends. A step that BuildKit reopens later all the same shows
 *   its header again.
 * - The cache import of a scope's first build reads as information, not as an `ERROR`.
 *
 * docs/contracts.md#build-logs lists the lines.
 */
export class BuildKitLogRenderer {
  private readonly vertices = new Map<string, VertexState>();
  private nextIndex = 1;
  /** Latest first start of any vertex (µs): the build has moved past what ended before it. */
  private frontier = Number.NEGATIVE_INFINITY;
  private out: LogChunk[] = [];

  /** Lines for one record. */
  render(status: SolveStatus): LogChunk[] {
    const touched: VertexState[] = [];
    const touch = (v: VertexState): void => {
      if (!touched.includes(v)) touched.push(v);
    };
    const newStatuses = new Map<VertexState, SolveVertexStatus[]>();
    const newLogs = new Map<VertexState, SolveVertexLog[]>();
    const newWarnings = new Map<VertexState | null, string[]>();

    for (const raw of status.vertexes ?? []) {
      const v = this.applyVertex(raw);
      if (v.intervals.size > 0) touch(v);
    }
    for (const s of status.statuses ?? []) {
      const v = this.vertexFor(s.vertex);
      this.applyStatus(v, s);
      push(newStatuses, v, s);
      touch(v);
    }
    for (const w of status.warnings ?? []) {
      if (!w.short) continue;
      const v = w.vertex ? this.vertexFor(w.vertex) : null;
      push(newWarnings, v, Buffer.from(w.short, 'base64').toString('utf8'));
      if (v) touch(v);
    }
    for (const l of status.logs ?? []) {
      if (!l.data) continue;
      const v = this.vertexFor(l.vertex);
      push(newLogs, v, l);
      touch(v);
    }

    // Steps the build moved past go first, so that a DONE comes before the next step's header;
    // a step with lines in this record shows them first.
    this.settle((v) => !newStatuses.has(v) && !newLogs.has(v) && !newWarnings.has(v));
    for (const v of touched) {
      const statuses = newStatuses.get(v) ?? [];
      const warnings = newWarnings.get(v) ?? [];
      const logs = newLogs.get(v) ?? [];
      if (!v.finished || statuses.length > 0 || logs.length > 0 || !isClosed(v)) {
        this.showBody(v, statuses, warnings, logs);
      } else {
        // A Dockerfile lint warning can come after its step's final line: kept, unnumbered.
        for (const w of warnings) this.emit('stderr', `WARN: ${w}\n`);
      }
      this.finishIfTerminal(v);
    }
    for (const w of newWarnings.get(null) ?? []) this.emit('stderr', `WARN: ${w}\n`);
    this.settle(() => true);
    return this.take();
  }

  /** What is left at the end of the stream: cut lines and final lines still held back. */
  finish(): LogChunk[] {
    const byEnd = [...this.vertices.values()].sort((a, b) => lastStop(a) - lastStop(b));
    for (const v of byEnd) {
      this.flushPartial(v);
      if (!v.finished && v.index > 0 && isClosed(v) && v.openStatuses.size === 0) {
        this.showFinal(v);
      }
    }
    return this.take();
  }

  private applyVertex(raw: SolveVertex): VertexState {
    const v = this.vertexFor(raw.digest);
    if (raw.name) v.name = raw.name;
    for (const input of raw.inputs ?? []) this.vertexFor(input).dependents.add(raw.digest);
    if (raw.cached) v.cached = true;
    if (raw.error) v.error = raw.error;
    const started = raw.started ?? raw.completed;
    if (started) {
      const start = timeMicros(started);
      const stop = raw.completed ? timeMicros(raw.completed) : null;
      v.intervals.set(started, { start, stop });
      if (v.firstStart === null) {
        v.firstStart = start;
        if (start > this.frontier) this.frontier = start;
      }
    }
    return v;
  }

  private applyStatus(v: VertexState, s: SolveVertexStatus): void {
    if (s.completed) v.openStatuses.delete(s.id);
    else if (s.started) v.openStatuses.add(s.id);
  }

  private vertexFor(digest: string): VertexState {
    let v = this.vertices.get(digest);
    if (!v) {
      v = {
        name: '',
        dependents: new Set(),
        index: 0,
        intervals: new Map(),
        firstStart: null,
        cached: false,
        error: null,
        open: false,
        finished: false,
        openStatuses: new Set(),
        doneStatuses: new Set(),
        statusShownAt: new Map(),
        partial: { stdout: '', stderr: '' },
      };
      this.vertices.set(digest, v);
    }
    return v;
  }

  private showHeader(v: VertexState): void {
    if (v.open) return;
    if (v.index === 0) v.index = this.nextIndex++;
    v.open = true;
    v.finished = false;
    this.emit('stdout', `#${v.index} ${v.name}\n`);
  }

  private showBody(
    v: VertexState,
    statuses: SolveVertexStatus[],
    warnings: string[],
    logs: SolveVertexLog[],
  ): void {
    this.showHeader(v);
    for (const s of statuses) {
      const line = this.statusLine(v, s);
      if (line !== null) this.emit('stdout', `#${v.index} ${line}\n`);
    }
    for (const w of warnings) this.emit('stderr', `#${v.index} WARN: ${w}\n`);
    for (const l of logs) {
      const stream: EngineStream = l.stream === 1 ? 'stdout' : 'stderr';
      const lines = (
        v.partial[stream] + Buffer.from(l.data ?? '', 'base64').toString('utf8')
      ).split('\n');
      v.partial[stream] = lines.pop() ?? '';
      for (const line of lines) this.emit(stream, logLine(v.index, line));
    }
  }

  /**
   * `<id>[ <current> / <total> | <current>][ <seconds>s] done` for a status that ended (once),
   * the same without `done` for a running one at most every 5 s; null when nothing is due.
   */
  private statusLine(v: VertexState, s: SolveVertexStatus): string | null {
    if (s.completed) {
      if (v.doneStatuses.has(s.id)) return null;
      v.doneStatuses.add(s.id);
    } else {
      const at = s.timestamp ? timeMicros(s.timestamp) : Number.NaN;
      const since = v.statusShownAt.get(s.id) ?? (s.started ? timeMicros(s.started) : at);
      if (!(at - since >= OPEN_STATUS_EVERY_US)) return null;
      v.statusShownAt.set(s.id, at);
    }
    let amount = '';
    if (s.total) amount = ` ${formatBytes(s.current ?? 0)} / ${formatBytes(s.total)}`;
    else if (s.current) amount = ` ${formatBytes(s.current)}`;
    let time = '';
    const end = s.completed ?? s.timestamp;
    if (s.started && end) {
      const seconds = (timeMicros(end) - timeMicros(s.started)) / 1e6;
      if (seconds > 0.01) time = ` ${seconds.toFixed(1)}s`;
    }
    return `${s.id}${amount}${time}${s.completed ? ' done' : ''}`;
  }

  /** Errors and cached steps are final at once: BuildKit does not reopen them. */
  private finishIfTerminal(v: VertexState): void {
    if (v.finished || !isClosed(v) || v.openStatuses.size > 0) return;
    if (v.error !== null || v.cached) this.showFinal(v);
  }

  /**
   * Shows the final line of every ended step the build has moved past, oldest first: a step
   * that others take as input once one of them started (BuildKit runs a vertex after its
   * inputs), any other once a step first started after it ended.
   */
  private settle(eligible: (v: VertexState) => boolean): void {
    const due = [...this.vertices.values()]
      .filter(
        (v) =>
          !v.finished &&
          v.open &&
          isClosed(v) &&
          v.openStatuses.size === 0 &&
          eligible(v) &&
          this.movedPast(v),
      )
      .sort((a, b) => lastStop(a) - lastStop(b));
    for (const v of due) this.showFinal(v);
  }

  private movedPast(v: VertexState): boolean {
    if (v.dependents.size === 0) return this.frontier > lastStop(v);
    for (const d of v.dependents) {
      const dependent = this.vertices.get(d);
      if (dependent !== undefined && dependent.firstStart !== null) return true;
    }
    return false;
  }

  private showFinal(v: VertexState): void {
    this.showHeader(v);
    this.flushPartial(v);
    const n = v.index;
    const importRef = cacheImportRef(v.name);
    if (v.error !== null && importRef !== null) {
      if (isMissingCache(v.error)) this.emit('stdout', `#${n} ${missingCacheNote(importRef)}\n`);
      else this.emit('stderr', `#${n} WARN: cache not imported: ${v.error}\n`);
      this.emit('stdout', `#${n} DONE ${duration(v)}\n`);
    } else if (v.error !== null) {
      const text = isCancellation(v.error) ? 'CANCELED' : `ERROR: ${v.error}`;
      for (const line of text.split('\n')) this.emit('stderr', logLine(n, line));
    } else if (v.cached) {
      this.emit('stdout', `#${n} CACHED\n`);
    } else {
      this.emit('stdout', `#${n} DONE ${duration(v)}\n`);
    }
    v.open = false;
    v.finished = true;
  }

  private flushPartial(v: VertexState): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (v.partial[stream] === '') continue;
      this.emit(stream, logLine(v.index, v.partial[stream]));
      v.partial[stream] = '';
    }
  }

  private emit(stream: EngineStream, text: string): void {
    const last = this.out.at(-1);
    if (last?.stream === stream) last.text += text;
    else this.out.push({ stream, text });
  }

  private take(): LogChunk[] {
    const out = this.out;
    this.out = [];
    return out;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function logLine(index: number, line: string): string {
  return line === '' ? `#${index}\n` : `#${index} ${line}\n`;
}

/** Started, and every interval ended. */
function isClosed(v: VertexState): boolean {
  if (v.intervals.size === 0) return false;
  for (const i of v.intervals.values()) if (i.stop === null) return false;
  return true;
}

function lastStop(v: VertexState): number {
  let last = Number.NEGATIVE_INFINITY;
  for (const i of v.intervals.values()) if (i.stop !== null && i.stop > last) last = i.stop;
  return last;
}

/** Time the step ran: its intervals merged where they overlap, summed ("1.2s"). */
function duration(v: VertexState): string {
  const ivals = [...v.intervals.values()]
    .filter((i): i is { start: number; stop: number } => i.stop !== null)
    .sort((a, b) => a.start - b.start);
  let total = 0;
  let cur: { start: number; stop: number } | null = null;
  for (const i of ivals) {
    if (cur !== null && i.start <= cur.stop) {
      cur.stop = Math.max(cur.stop, i.stop);
      continue;
    }
    if (cur !== null) total += cur.stop - cur.start;
    cur = { ...i };
  }
  if (cur !== null) total += cur.stop - cur.start;
  return `${(Math.max(0, total) / 1e6).toFixed(1)}s`;
}
