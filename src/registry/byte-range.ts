/** An inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a single-range `Range: bytes=…` header (RFC 9110 §14.1.2) against a size.
 * Returns null when there is no usable Range header (serve the whole body), 'unsatisfiable'
 * for ranges that cannot be served (→ 416).
 */
export function parseRangeHeader(
  header: string | undefined,
  size: number,
): ByteRange | null | 'unsatisfiable' {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.trim().startsWith('bytes=') ? 'unsatisfiable' : null;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return 'unsatisfiable';
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** Parses an upload chunk's `Content-Range: <start>-<end>` (distribution spec, chunked push). */
export function parseContentRange(header: string): ByteRange | null {
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m?.[1] || !m[2]) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  return end < start ? null : { start, end };
}
