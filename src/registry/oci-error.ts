/**
 * Error codes of the OCI distribution spec (v1.1, "Error Codes" table) with the HTTP status
 * Kiln answers them with by default (a few answers override it, e.g. 416 for ranges). The
 * registry does not use the daemon's AppError catalog: its wire shape is the spec's
 * `{"errors":[{"code","message","detail"}]}`. `UNKNOWN` (Docker registry's code for 500s) is
 * the only code outside the spec's table: the table has none for internal errors.
 */
export const OCI_ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNKNOWN: 500,
} as const;

export type OciErrorCode = keyof typeof OCI_ERROR_STATUS;

/** An error the registry answers in the OCI JSON shape; `status` may override the default. */
export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: OciErrorCode,
    message: string,
    options: {
      status?: number;
      detail?: unknown;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'OciError';
    this.code = code;
    this.status = options.status ?? OCI_ERROR_STATUS[code];
    this.detail = options.detail ?? null;
    this.headers = options.headers ?? {};
  }

  /** The spec's error body. */
  toBody(): { errors: { code: string; message: string; detail: unknown }[] } {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }
}
