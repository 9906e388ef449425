/**
 * Reads the pushed image digest from `buildctl --metadata-file` output: a JSON object whose
 * `containerimage.digest` is the manifest (or index) digest the image exporter produced, and
 * `containerimage.descriptor.digest` the same digest in descriptor form.
 */
export function digestFromMetadata(text: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const meta = value as Record<string, unknown>;
  const direct = meta['containerimage.digest'];
  if (typeof direct === 'string' && isDigest(direct)) return direct;
  const descriptor = meta['containerimage.descriptor'];
  if (descriptor !== null && typeof descriptor === 'object') {
    const d = (descriptor as Record<string, unknown>).digest;
    if (typeof d === 'string' && isDigest(d)) return d;
  }
  return null;
}

function isDigest(value: string): boolean {
  return /^sha256:[a-f0-9]{64}$/.test(value);
}
