import { z } from 'zod';

/**
 * One figure of a benchmark in the shape every bench writes under `summary` in its
 * bench/results/<name>.json: the value, the reference it is compared with (measured in the
 * same run, or the budget itself for an absolute target), their ratio, the target for that
 * ratio and whether it was met.
 */
export const summaryEntrySchema = z.object({
  name: z.string().min(1),
  value: z.number(),
  reference: z.number(),
  /** value / reference. */
  ratio: z.number(),
  /** The bound on `ratio`: an upper bound unless `better` is `higher`. */
  target: z.number().positive(),
  pass: z.boolean(),
  /** Unit of `value` and `reference` (`s`, `ms`, `MiB/s`, …). */
  unit: z.string().optional(),
  /** Which way is better; `lower` when absent. */
  better: z.enum(['lower', 'higher']).optional(),
  /** What the reference is, when the name does not say it. */
  note: z.string().optional(),
});

export type SummaryEntry = z.infer<typeof summaryEntrySchema>;

/** The `summary` array of a results file (absent in files written before it existed). */
export const resultsFileSchema = z
  .object({ summary: z.array(summaryEntrySchema).optional() })
  .loose();

/**
 * A summary entry from a value and its reference: the ratio is computed here, and `pass`
 * holds when the ratio is at most the target (at least, with `better: 'higher'`).
 */
export function summaryEntry(input: {
  name: string;
  value: number;
  reference: number;
  target: number;
  unit?: string;
  better?: 'lower' | 'higher';
  note?: string;
}): SummaryEntry {
  if (!Number.isFinite(input.value) || !Number.isFinite(input.reference)) {
    throw new RangeError(`${input.name}: value and reference must be finite numbers`);
  }
  if (input.reference <= 0) throw new RangeError(`${input.name}: reference must be positive`);
  if (!(input.target > 0)) throw new RangeError(`${input.name}: target must be positive`);
  const ratio = input.value / input.reference;
  const better = input.better ?? 'lower';
  const pass = better === 'lower' ? ratio <= input.target : ratio >= input.target;
  return {
    name: input.name,
    value: input.value,
    reference: input.reference,
    ratio,
    target: input.target,
    pass,
    ...(input.unit === undefined ? {} : { unit: input.unit }),
    ...(input.better === undefined ? {} : { better: input.better }),
    ...(input.note === undefined ? {} : { note: input.note }),
  };
}
