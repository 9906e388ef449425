/**
 * What can go wrong while backing up or restoring a data directory. These are never HTTP
 * answers (the commands run on the daemon's host, beside it), so they live here and not in the
 * HTTP error catalog; `kiln admin` prints the message and exits 1.
 */
export const BACKUP_ERROR_MESSAGES = {
  BACKUP_NO_DATABASE: 'The data directory holds no Kiln database.',
  BACKUP_TARGET_EXISTS: 'The backup target already exists; a backup never overwrites.',
  BACKUP_TARGET_INSIDE_DATA: 'The backup target lies inside the data directory.',
  BACKUP_KEYS_MISSING: 'The data directory holds no signing keys.',
  BACKUP_BLOB_MISSING: 'A blob a stored manifest names is missing from the data directory.',
  BACKUP_BLOB_SIZE_MISMATCH: 'A blob file does not have the size its row records.',
  RESTORE_NOT_A_BACKUP: 'The directory is not a Kiln backup (no backup.json).',
  RESTORE_TARGET_NOT_EMPTY: 'The restore target exists and is not empty.',
  RESTORE_INCOMPLETE: 'The backup is incomplete: a file its record lists is missing.',
} as const;

export type BackupErrorCode = keyof typeof BACKUP_ERROR_MESSAGES;

/** A failed backup or restore, with a code from {@link BACKUP_ERROR_MESSAGES}. */
export class BackupError extends Error {
  readonly code: BackupErrorCode;

  constructor(code: BackupErrorCode, message?: string, options: { cause?: unknown } = {}) {
    super(message ?? BACKUP_ERROR_MESSAGES[code], { cause: options.cause });
    this.name = 'BackupError';
    this.code = code;
  }
}

/** True for a BackupError of the given code (or of any code when none is given). */
export function isBackupError(value: unknown, code?: BackupErrorCode): value is BackupError {
  return value instanceof BackupError && (code === undefined || value.code === code);
}
