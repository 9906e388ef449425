const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'] as const;

/**
 * A byte count as BuildKit's plain progress prints it (github.com/tonistiigi/units `%.2f`):
 * whole bytes below 1000 ("495B"), otherwise two decimals of the largest decimal unit
 * ("1.06MB", "3.50kB").
 */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.trunc(bytes)}B` : `${value.toFixed(2)}${UNITS[unit] ?? ''}`;
}
