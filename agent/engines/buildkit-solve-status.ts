import { z } from 'zod';

/**
 * One line of `buildctl --progress rawjson`: a BuildKit `client.SolveStatus` in Go's
 * encoding/json form (github.com/moby/buildkit/client/graph.go). Every field is optional as
 * BuildKit omits empty ones; unknown fields are ignored. Times are RFC 3339 with nanoseconds;
 * `[]byte` fields (`data`, `short`) are base64.
 */
const timestamp = z.string();

const vertex = z.object({
  digest: z.string(),
  inputs: z.array(z.string()).nullish(),
  name: z.string().nullish(),
  started: timestamp.nullish(),
  completed: timestamp.nullish(),
  cached: z.boolean().nullish(),
  error: z.string().nullish(),
});

const vertexStatus = z.object({
  id: z.string(),
  vertex: z.string(),
  name: z.string().nullish(),
  current: z.number().nullish(),
  total: z.number().nullish(),
  timestamp: timestamp.nullish(),
  started: timestamp.nullish(),
  completed: timestamp.nullish(),
});

const vertexLog = z.object({
  vertex: z.string(),
  /** 1 = the step's stdout, 2 = its stderr (client.VertexLog.Stream). */
  stream: z.number().nullish(),
  data: z.string().nullish(),
  timestamp: timestamp.nullish(),
});

const vertexWarning = z.object({
  vertex: z.string().nullish(),
  level: z.number().nullish(),
  short: z.string().nullish(),
});

const solveStatus = z.object({
  vertexes: z.array(vertex).nullish(),
  statuses: z.array(vertexStatus).nullish(),
  logs: z.array(vertexLog).nullish(),
  warnings: z.array(vertexWarning).nullish(),
});

export type SolveVertex = z.infer<typeof vertex>;
export type SolveVertexStatus = z.infer<typeof vertexStatus>;
export type SolveVertexLog = z.infer<typeof vertexLog>;
export type SolveVertexWarning = z.infer<typeof vertexWarning>;
export type SolveStatus = z.infer<typeof solveStatus>;

/** Parses one rawjson line; null when it is not a SolveStatus (buildctl's own text lines). */
export function parseSolveStatus(line: string): SolveStatus | null {
  if (!line.startsWith('{')) return null;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  const parsed = solveStatus.safeParse(value);
  return parsed.success ? parsed.data : null;
}

/**
 * Microseconds since the epoch of an RFC 3339 time with up to nanosecond precision (BuildKit's
 * timestamps; `Date.parse` keeps only milliseconds). NaN when it is not such a time.
 */
export function timeMicros(value: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(value);
  if (!m?.[1] || !m[3]) return Number.NaN;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  const micros = Number((m[2] ?? '').padEnd(6, '0').slice(0, 6));
  return seconds * 1000 + micros;
}
