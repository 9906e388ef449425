import { cacheImportRef } from './buildkit-cache-import.js';

/** Longest reason kept: the result message is bounded (agent-messages `message`). */
const MAX_REASON_CHARS = 4000;

/**
 * Why a BuildKit build failed, in BuildKit's words: buildctl's last line on failure,
 * `error: failed to solve: …` (client/solve.go wraps the solver's error as "failed to solve"),
 * or, when buildctl printed none (killed before it could), the first failed step's vertex
 * error. Cache-import errors never count (BuildKit builds on without the cache), nor do steps
 * cancelled because another one failed. A buildkitd that never came up is reported by the
 * agent's own daemon start (buildkit-daemon.ts), before buildctl runs.
 */
export class BuildKitFailureReason {
  private errorLine: string | null = null;
  private vertexError: string | null = null;

  /** Notes one of buildctl's own text lines (not a rawjson record). */
  noteTextLine(line: string): void {
    const text = line.trim();
    const m = /^error: (.+)$/.exec(text);
    if (m?.[1] && this.errorLine === null) this.errorLine = m[1];
  }

  /** Notes a vertex that completed with an error. */
  noteVertexError(vertexName: string, error: string): void {
    if (this.vertexError !== null || cacheImportRef(vertexName) !== null) return;
    if (isCancellation(error)) return;
    this.vertexError = error;
  }

  /** The reason, or null when BuildKit gave none. */
  reason(): string | null {
    const reason = this.errorLine ?? this.vertexError;
    return reason === null ? null : reason.slice(0, MAX_REASON_CHARS);
  }
}

/** True for the error of a step BuildKit stopped (`… context canceled`). */
export function isCancellation(error: string): boolean {
  return error.endsWith('context canceled');
}
