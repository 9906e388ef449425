/**
 * Codes a failed build carries (docs/contracts.md#build-failure-codes). These are stored on the
 * build and shown in its `error.code`; they are not HTTP errors.
 */
export const BUILD_ERROR_CODES = [
  'build_failed',
  'push_failed',
  'timeout',
  'queue_timeout',
  'vm_boot_failed',
  'agent_lost',
  'agent_protocol_error',
  'invalid_source',
  'base_image_unavailable',
  'daemon_restarted',
  'build_secrets_lost',
  'cancelled',
  'internal',
] as const;

export type BuildErrorCode = (typeof BUILD_ERROR_CODES)[number];

export function isBuildErrorCode(value: string): value is BuildErrorCode {
  return (BUILD_ERROR_CODES as readonly string[]).includes(value);
}
