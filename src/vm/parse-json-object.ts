/**
 * Parses `text` as JSON and returns it as a record, or null when it is not JSON or not an
 * object. Arrays count as objects here; callers check the fields they need.
 */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  return value as Record<string, unknown>;
}
