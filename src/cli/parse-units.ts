import { InvalidArgumentError } from 'commander';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses a duration such as 3600, 90s, 30m, 12h or 30d into whole seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!m?.[1]) throw new InvalidArgumentError('expected a duration such as 600, 30m, 12h or 30d');
  const seconds = Number(m[1]) * (UNIT_SECONDS[m[2] ?? ''] ?? 1);
  if (seconds <= 0) throw new InvalidArgumentError('must be positive');
  return seconds;
}

const UNIT_MIB: Record<string, number> = { m: 1, g: 1024, t: 1024 * 1024 };

/**
 * Parses a memory size into MiB, Docker style: `512m`, `2g`, `2GiB`, `1.5g`. A bare number
 * means MiB (the daemon's unit), never bytes: `--memory 2048` asks for 2 GiB.
 */
export function parseMemoryMb(text: string): number {
  const m = /^(\d{1,7}(?:\.\d{1,3})?)\s*([mgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m?.[1]) throw new InvalidArgumentError('expected a size such as 512m, 2g or 2048 (MiB)');
  const mib = Number(m[1]) * (UNIT_MIB[(m[2] ?? '').toLowerCase()] ?? 1);
  if (!Number.isInteger(mib) || mib <= 0) {
    throw new InvalidArgumentError('must be a positive whole number of MiB');
  }
  return mib;
}

/** Parses a whole, positive CPU count (the daemon gives a VM whole vCPUs). */
export function parseCpus(text: string): number {
  if (!/^\d{1,3}$/.test(text.trim()) || Number(text) <= 0) {
    throw new InvalidArgumentError('expected a whole number of CPUs such as 2');
  }
  return Number(text.trim());
}

/** Formats a byte count for people in binary units, one decimal above bytes: 1.2 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Formats seconds for people: 0.4s, 12.3s, 2m05s. */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return `${m}m${String(s).padStart(2, '0')}s`;
}
