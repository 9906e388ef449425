import type { BuildPhase } from '../../common/protocol/agent-messages.js';

/** One vertex of a BuildKit SolveStatus (`buildctl --progress rawjson`, client.Vertex). */
interface RawVertex {
  digest?: string;
  name?: string;
  started?: string;
  completed?: string;
  cached?: boolean;
  error?: string;
}

interface RawStatus {
  id?: string;
  vertex?: string;
  current?: number;
  total?: number;
  completed?: string;
}

interface RawLog {
  vertex?: string;
  stream?: number;
  /** base64 ([]byte in Go's encoding/json). */
  data?: string;
}

interface RawWarning {
  vertex?: string;
  short?: string;
}

/** What one rawjson line turned into. */
export interface ProgressUpdate {
  /** Human-readable log text (lines end with "\n"). */
  text: string;
  /** A phase the build entered, when a vertex says so. */
  phase: BuildPhase | null;
}

/**
 * Turns `buildctl --progress rawjson` output (one JSON SolveStatus per line) into log lines
 * in the style of `--progress plain` ("#3 [2/3] RUN make", "#3 0.123 output", "#3 DONE 1.2s"),
 * phases (`pushing` on the image export/push vertices, `exporting_cache` on the cache export)
 * and the base images BuildKit resolved (from `[n/m] FROM ref@sha256:…` vertex names).
 */
export class BuildKitProgressParser {
  private readonly numbers = new Map<string, number>();
  private readonly started = new Set<string>();
  private readonly finished = new Set<string>();
  private readonly reported = new Set<string>();
  private readonly baseImages = new Map<string, string>();
  private phase: BuildPhase = 'building';

  /** Parses one output line; non-JSON lines pass through as text. */
  parseLine(line: string): ProgressUpdate {
    const trimmed = line.trim();
    if (trimmed === '') return { text: '', phase: null };
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      return { text: `${trimmed}\n`, phase: null };
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return { text: `${trimmed}\n`, phase: null };
    }
    const status = value as {
      vertexes?: RawVertex[];
      statuses?: RawStatus[];
      logs?: RawLog[];
      warnings?: RawWarning[];
    };
    let text = '';
    let phase: BuildPhase | null = null;
    for (const v of status.vertexes ?? []) {
      if (!v.digest) continue;
      const n = this.number(v.digest);
      const name = v.name ?? '';
      this.noteBaseImage(name);
      if (v.started && !this.started.has(v.digest)) {
        this.started.add(v.digest);
        text += `#${n} ${name}\n`;
        const p = phaseOf(name);
        if (p !== null && p !== this.phase) {
          this.phase = p;
          phase = p;
        }
      }
      if (v.completed && !this.finished.has(v.digest)) {
        this.finished.add(v.digest);
        if (v.error) text += `#${n} ERROR: ${v.error}\n`;
        else if (v.cached) text += `#${n} CACHED\n`;
        else text += `#${n} DONE ${seconds(v.started, v.completed)}\n`;
      }
    }
    for (const s of status.statuses ?? []) {
      if (!s.vertex || !s.id || !s.completed) continue;
      const key = `${s.vertex} ${s.id}`;
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      const amount = s.total ? `${s.current ?? 0}/${s.total}` : `${s.current ?? 0}`;
      text += `#${this.number(s.vertex)} ${s.id} ${amount} done\n`;
    }
    for (const l of status.logs ?? []) {
      if (!l.vertex || !l.data) continue;
      const n = this.number(l.vertex);
      const data = Buffer.from(l.data, 'base64').toString('utf8');
      for (const part of data.split('\n')) {
        if (part !== '') text += `#${n} ${part}\n`;
      }
    }
    for (const w of status.warnings ?? []) {
      if (!w.short) continue;
      text += `WARNING: ${Buffer.from(w.short, 'base64').toString('utf8')}\n`;
    }
    return { text, phase };
  }

  /** Base image reference → digest, from the FROM vertices seen so far. */
  resolvedBaseImages(): Record<string, string> {
    return Object.fromEntries(this.baseImages);
  }

  private number(digest: string): number {
    let n = this.numbers.get(digest);
    if (n === undefined) {
      n = this.numbers.size + 1;
      this.numbers.set(digest, n);
    }
    return n;
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

function seconds(started: string | undefined, completed: string | undefined): string {
  if (!started || !completed) return '0.0s';
  const ms = Date.parse(completed) - Date.parse(started);
  return Number.isFinite(ms) ? `${(Math.max(0, ms) / 1000).toFixed(1)}s` : '0.0s';
}
