import type { StreamedEvent } from './follow-events.js';
import type { RemoteBuild } from './kiln-client.js';
import { formatSeconds } from './parse-units.js';

/** How one step of a build is named on screen (status and agent phases share a line). */
const LABELS: Record<string, string> = {
  queued: 'queued',
  booting: 'booting the build VM',
  building: 'building',
  pushing: 'pushing',
  extracting: 'unpacking the source',
  engine_start: 'starting the engine',
  exporting_cache: 'exporting the cache',
  syncing_cache: 'syncing the cache disk',
};

/** Stage lines shorter than this do not get a "took" note (a status and phase back to back). */
const MIN_NOTED_SECONDS = 0.05;

/**
 * "queued 0.1s · boot 7.6s · … · total 17.1s" from a build's `timings`: its phases in the
 * daemon's order, any unaccounted rest, and the total.
 */
export function formatTimings(timings: RemoteBuild['timings']): string {
  const parts = Object.entries(timings.phases).map(([k, s]) => `${k} ${formatSeconds(s)}`);
  if (Math.abs(timings.unaccounted_seconds) >= 0.001) {
    parts.push(`unaccounted ${formatSeconds(timings.unaccounted_seconds)}`);
  }
  if (timings.total_seconds !== null) parts.push(`total ${formatSeconds(timings.total_seconds)}`);
  return parts.join(' · ');
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/**
 * Turns build events into readable lines: one `=> …` line per status or phase change, noting
 * how long the previous step took; the engine's output indented below, a line at a time (a
 * log event may hold half a line, so each stream keeps its unfinished tail until the next
 * newline or the next step); and the outcome. `write` gets whole lines only.
 */
export class EventRenderer {
  private stage: { name: string; at: number } | null = null;
  private readonly partial = new Map<string, string>();
  /** Log lines shown so far (the failure summary repeats the tail only when none were). */
  logLines = 0;

  constructor(private readonly write: (text: string) => void) {}

  render(event: StreamedEvent): void {
    const at = Date.parse(text(event.data.at));
    switch (event.type) {
      case 'status':
      case 'phase': {
        const name = text(event.type === 'status' ? event.data.status : event.data.phase);
        // The terminal statuses are told by the result event, which carries the details.
        if (['ready', 'failed', 'cancelled'].includes(name)) return;
        this.flushLogs();
        this.write(`=> ${LABELS[name] ?? name}${this.closeStage(at)}\n`);
        this.stage = { name, at };
        return;
      }
      case 'log': {
        const stream = text(event.data.stream);
        const combined = (this.partial.get(stream) ?? '') + text(event.data.data);
        const lines = combined.split('\n');
        this.partial.set(stream, lines.pop() ?? '');
        for (const line of lines) this.logLine(line);
        if (event.data.truncated === true) {
          this.flushLogs();
          this.write('   … the daemon stopped storing log output here (log size limit)\n');
        }
        return;
      }
      case 'result':
        this.flushLogs();
        this.renderResult(event, at);
        return;
      default:
        return;
    }
  }

  /** Writes what is left of unfinished log lines. */
  flushLogs(): void {
    for (const [stream, rest] of this.partial) {
      if (rest !== '') this.logLine(rest);
      this.partial.set(stream, '');
    }
  }

  private logLine(line: string): void {
    this.logLines += 1;
    this.write(`   ${line.replace(/\r$/, '')}\n`);
  }

  private closeStage(at: number): string {
    if (this.stage === null || Number.isNaN(at)) return '';
    const seconds = (at - this.stage.at) / 1000;
    if (seconds < MIN_NOTED_SECONDS) return '';
    return ` (${LABELS[this.stage.name] ?? this.stage.name} took ${formatSeconds(seconds)})`;
  }

  private renderResult(event: StreamedEvent, at: number): void {
    const status = text(event.data.status);
    const took = this.closeStage(at);
    this.stage = null;
    if (status === 'ready') {
      const result = event.data.result as {
        imageRef?: string;
        imageRefs?: string[];
        imageDigest?: string;
      } | null;
      this.write(`=> ready${took}\n`);
      for (const ref of result?.imageRefs ?? [text(result?.imageRef)]) {
        this.write(`image  ${ref}\n`);
      }
      this.write(`digest ${text(result?.imageDigest)}\n`);
      return;
    }
    const failure = event.data.failure as { code?: string; message?: string } | null;
    this.write(
      `=> ${status}${took}: ${text(failure?.message)}${failure?.code ? ` (${failure.code})` : ''}\n`,
    );
  }
}

/** The line that ends a build's output, with its timings (GET /builds/:id). */
export function summaryLine(build: RemoteBuild): string {
  const timings = formatTimings(build.timings);
  return timings === '' ? '' : `timings ${timings}\n`;
}
