import { BuildKitFailureReason } from './buildkit-failure.js';
import { BuildKitLogRenderer, type EngineStream, type LogChunk } from './buildkit-log-renderer.js';
import { parseSolveStatus } from './buildkit-solve-status.js';
import type { BuildPhase } from '../../common/protocol/agent-messages.js';

/** What one line of buildctl's output turned into. */
export interface ProgressUpdate {
  /** Log text per stream, in order (lines end with "\n"). */
  chunks: LogChunk[];
  /** A phase the build entered, when a vertex says so. */
  phase: BuildPhase | null;
}

/**
 * Reads `buildctl --progress rawjson` output (one JSON SolveStatus per line, on stderr, with
 * buildctl's own text lines such as `error: failed to solve: …` in between): log lines in the
 * style of `--progress plain` (BuildKitLogRenderer, docs/contracts.md#build-logs), phases
 * (`pushing` on the image export/push vertices, `exporting_cache` on the cache export), the
 * base images BuildKit resolved (from `[n/m] FROM ref@sha256:…` vertex names) and, for a failed
 * build, BuildKit's own reason.
 */
export class BuildKitProgressParser {
  private readonly renderer = new BuildKitLogRenderer();
  private readonly failure = new BuildKitFailureReason();
  private readonly started = new Set<string>();
  private readonly baseImages = new Map<string, string>();
  private phase: BuildPhase = 'building';

  /**
   * Parses one output line read from `source`; a line that is no SolveStatus is one of
   * buildctl's own and passes through as text on the stream it came on.
   */
  parseLine(line: string, source: EngineStream = 'stderr'): ProgressUpdate {
    const trimmed = line.trim();
    if (trimmed === '') return { chunks: [], phase: null };
    const status = parseSolveStatus(trimmed);
    if (status === null) {
      this.failure.noteTextLine(trimmed);
      return { chunks: [{ stream: source, text: `${line.trimEnd()}\n` }], phase: null };
    }
    let phase: BuildPhase | null = null;
    for (const v of status.vertexes ?? []) {
      const name = v.name ?? '';
      this.noteBaseImage(name);
      if (v.completed && v.error) this.failure.noteVertexError(name, v.error);
      if (!v.started || this.started.has(v.digest)) continue;
      this.started.add(v.digest);
      const p = phaseOf(name);
      if (p !== null && p !== this.phase) {
        this.phase = p;
        phase = p;
      }
    }
    return { chunks: this.renderer.render(status), phase };
  }

  /** Call once the output ended: the lines still held back (final lines, cut log lines). */
  finish(): LogChunk[] {
    return this.renderer.finish();
  }

  /** BuildKit's reason for a failed build (`failed to solve: …`), or null when it gave none. */
  failureReason(): string | null {
    return this.failure.reason();
  }

  /** Base image reference → digest, from the FROM vertices seen so far. */
  resolvedBaseImages(): Record<string, string> {
    return Object.fromEntries(this.baseImages);
  }

  private noteBaseImage(name: string): void {
    const m = /^\[(?:[^\]]*\s)?\d+\/\d+\] FROM (\S+?)@(sha256:[a-f0-9]{64})$/.exec(name);
    if (!m?.[1] || !m[2]) return;
    this.baseImages.set(m[1], m[2]);
  }
}

/** Which phase a vertex name starts (BuildKit's exporter and cache-export vertex names). */
export function phaseOf(name: string): BuildPhase | null {
  if (/^exporting cache\b|^exporting to cache\b|^writing cache (image )?manifest\b/i.test(name)) {
    return 'exporting_cache';
  }
  if (
    /^exporting to image\b|^pushing layers\b|^pushing manifest\b|^exporting manifest\b/i.test(name)
  ) {
    return 'pushing';
  }
  return null;
}
