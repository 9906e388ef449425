/**
 * What can go wrong on the host's VM side: no usable monitor, a monitor that refuses or dies,
 * a missing guest image. These are never HTTP answers — a build that meets one fails (its
 * code stays in the daemon's log, the build gets a build failure code such as
 * `vm_boot_failed`), and the daemon refuses to start when no VMM is usable — so they live
 * here and not in the HTTP error catalog.
 */
export const VM_ERROR_MESSAGES = {
  VMM_UNAVAILABLE: 'No usable virtual machine monitor.',
  VMM_API_ERROR: 'The virtual machine monitor refused a request.',
  VMM_START_FAILED: 'The virtual machine monitor failed to start.',
  VMM_VM_EXITED: 'The VM ended before the agent connected.',
  GUEST_IMAGE_MISSING: 'The builder guest image is missing.',
} as const;

export type VmErrorCode = keyof typeof VM_ERROR_MESSAGES;

/** A failure of the VM side, with a code from {@link VM_ERROR_MESSAGES}. */
export class VmError extends Error {
  readonly code: VmErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: VmErrorCode,
    message?: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message ?? VM_ERROR_MESSAGES[code], { cause: options.cause });
    this.name = 'VmError';
    this.code = code;
    this.details = options.details;
  }
}

/** True for a VmError of the given code (or of any code when none is given). */
export function isVmError(value: unknown, code?: VmErrorCode): value is VmError {
  return value instanceof VmError && (code === undefined || value.code === code);
}
