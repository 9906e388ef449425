/** Attribute keys used on Kiln's metrics, in one place (STYLE.md). */
export const METRIC_ATTRIBUTES = {
  status: 'status',
} as const;
