import { z } from 'zod';

/**
 * Small zod helpers for environment variables: every value arrives as a string (or is absent),
 * so these coerce, apply the default and validate in one place.
 */

/** A whole number in [min, max], or undefined when unset (no default). */
export const envOptionalInt = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional();

/** A whole number in [min, max], `def` when unset. */
export const envInt = (def: number, min: number, max: number) =>
  envOptionalInt(min, max).transform((v) => v ?? def);

/** One of a fixed set of words, `def` when unset. */
export const envEnum = <const T extends readonly [string, ...string[]]>(
  values: T,
  def: T[number],
) =>
  z
    .string()
    .trim()
    .pipe(z.enum(values, { message: `must be one of ${values.join(', ')}` }))
    .optional()
    .transform((v) => v ?? def);

/** A byte size: a whole number with an optional K/M/G/T suffix (binary multiples). */
export const envBytes = (def: number, min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+\s*([KMGT]i?B?)?$/i, 'must be a byte size such as 512M or 2G')
    .transform(parseByteSize)
    .pipe(z.number().int().min(min).max(max))
    .optional()
    .transform((v) => v ?? def);

export const envString = (def: string) =>
  z
    .string()
    .trim()
    .min(1)
    .optional()
    .transform((v) => v ?? def);

export const envOptionalString = () => z.string().trim().min(1).optional();

function parseByteSize(text: string): number {
  const m = /^(\d+)\s*([KMGT])?/i.exec(text.trim());
  if (!m?.[1]) return Number.NaN;
  const unit = (m[2] ?? '').toUpperCase();
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[unit] ?? Number.NaN;
  return Number(m[1]) * mult;
}
