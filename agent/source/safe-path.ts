import { AppError } from '../../src/errors/app-error.js';

/**
 * Normalises an archive entry name into its path components: no absolute names, no `..`,
 * `.` and empty components dropped. Returns [] for the root itself ("./").
 */
export function entryComponents(raw: Buffer, maxPathBytes: number): string[] {
  if (raw.length > maxPathBytes) {
    throw new AppError(
      'SOURCE_PATH_TOO_LONG',
      `a path in the source is ${raw.length} bytes (limit ${maxPathBytes})`,
    );
  }
  const name = raw.toString('utf8');
  if (name.includes('\0')) throw new AppError('SOURCE_UNSAFE_PATH', 'a path contains NUL');
  if (name.startsWith('/')) {
    throw new AppError('SOURCE_UNSAFE_PATH', `absolute path "${printable(name)}" in the source`);
  }
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      throw new AppError('SOURCE_UNSAFE_PATH', `path "${printable(name)}" contains ".."`);
    }
    parts.push(part);
  }
  return parts;
}

/** Keeps error messages readable whatever bytes an archive holds. */
export function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}
