/** Attribute keys used on Kiln's metrics, in one place (STYLE.md). */
export const METRIC_ATTRIBUTES = {
  status: 'status',
  /** Registry storage: `library`, `mirror`, `cache` or `tenant` (all tenants as one). */
  namespace: 'namespace',
  /** Mirror evictions: `manifest` or `blob`. */
  kind: 'kind',
  /** Cache disk attach: `hit` (a committed disk was forked) or `miss` (a new disk). */
  result: 'result',
  /** Build phase of `kiln_build_phase_seconds` (docs/contracts.md#timings). */
  phase: 'phase',
} as const;
