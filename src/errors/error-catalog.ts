/**
 * Every error code the daemon answers with, its HTTP status and default message.
 * Sections are grouped by the part of the design that raises them; codes are
 * SCREAMING_SNAKE_CASE on the wire. Only HTTP answers live here: build failure codes (stored
 * on failed builds) are in `common/errors/build-error-code.ts`, the host's VM-side failures in
 * `src/vm/vm-error.ts`, the guest's in `common/errors/build-failure.ts`.
 */
export const ERROR_CATALOG = {
  // --- generic HTTP ---
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  NOT_FOUND: { status: 404, message: 'No such route.' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body exceeds its limit.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type.' },
  INTERNAL: { status: 500, message: 'Internal server error.' },
  SHUTTING_DOWN: { status: 503, message: 'The daemon is shutting down.' },
  NOT_READY: { status: 503, message: 'The daemon is starting: restart recovery is not done yet.' },

  // --- auth (API tokens) ---
  UNAUTHENTICATED: { status: 401, message: 'A valid API token is required.' },
  INVALID_TOKEN: { status: 401, message: 'The token is invalid or expired.' },
  INSUFFICIENT_SCOPE: { status: 403, message: 'The token lacks the scope this needs.' },

  // --- builds API: upload and request validation (SOURCE_* from SOURCE_TOO_MANY_ENTRIES to
  // SOURCE_CORRUPT are the archive policy's codes, common/archive/archive-error.ts) ---
  NOT_MULTIPART: { status: 415, message: 'POST /builds takes multipart/form-data.' },
  SOURCE_MISSING: { status: 400, message: 'The multipart field "source" (a file) is required.' },
  SOURCE_DUPLICATE: { status: 400, message: 'Only one "source" file may be sent.' },
  UNKNOWN_FIELD: { status: 400, message: 'Unknown multipart field.' },
  DUPLICATE_FIELD: { status: 400, message: 'A multipart field was sent twice.' },
  INVALID_FIELD: { status: 400, message: 'A field has an invalid value.' },
  SOURCE_SHA256_MISMATCH: { status: 400, message: 'The source does not match source_sha256.' },
  SOURCE_TOO_LARGE: { status: 413, message: 'The source archive exceeds the size limit.' },
  SOURCE_UNPACKED_TOO_LARGE: { status: 413, message: 'The unpacked source exceeds the limit.' },
  SOURCE_TOO_MANY_ENTRIES: { status: 413, message: 'The source archive has too many entries.' },
  SOURCE_PATH_TOO_LONG: { status: 400, message: 'A path in the source archive is too long.' },
  SOURCE_UNSAFE_PATH: { status: 400, message: 'A path in the source archive leaves its root.' },
  SOURCE_FORBIDDEN_ENTRY: {
    status: 400,
    message: 'The source archive holds a forbidden entry type.',
  },
  SOURCE_BAD_LINK: { status: 400, message: 'The source archive holds an invalid link.' },
  SOURCE_NOT_ARCHIVE: {
    status: 400,
    message: 'The source is not a tar, tar.gz or tar.zst archive.',
  },
  SOURCE_CORRUPT: { status: 400, message: 'The source archive is truncated or corrupt.' },
  UPLOAD_ABORTED: { status: 400, message: 'The upload was interrupted.' },
  INVALID_IMAGE_NAME: { status: 400, message: 'image_name is not a valid repository name.' },
  INVALID_IMAGE_TAGS: { status: 400, message: 'image_tags is not a list of NAME[:TAG] entries.' },
  INVALID_CACHE_SCOPE: { status: 400, message: 'cache_scope is not a valid scope name.' },
  INVALID_NETWORK_MODE: { status: 400, message: 'network_mode must be "isolated" or "egress".' },
  INVALID_ENGINE: { status: 400, message: 'engine must be "buildkit" or "buildah".' },
  ENGINE_UNAVAILABLE: {
    status: 400,
    message: 'The guest image of this host does not have the engine asked for.',
  },
  INVALID_ALLOWED_HOSTS: {
    status: 400,
    message: 'allowed_hosts takes host names, IP addresses and *.suffix patterns.',
  },
  ALLOWED_HOSTS_NOT_PERMITTED: {
    status: 403,
    message: 'allowed_hosts reaches beyond the hosts the operator permits.',
  },
  RESOURCE_OUT_OF_RANGE: { status: 400, message: 'A resource request is out of range.' },
  UNKNOWN_SECRET: { status: 400, message: 'A requested secret does not exist.' },
  INVALID_BUILD_SECRET: { status: 400, message: 'A per-build secret part is invalid.' },
  SECRET_CONFLICT: {
    status: 400,
    message: 'A per-build secret has the id of a stored secret the build also asks for.',
  },

  INVALID_WEBHOOK_URL: { status: 400, message: 'webhook_url must be an absolute http(s) URL.' },

  // --- builds API: lifecycle ---
  BUILD_NOT_FOUND: { status: 404, message: 'No such build.' },
  INVALID_CURSOR: { status: 400, message: 'The pagination cursor is invalid.' },
  TENANT_QUEUE_FULL: { status: 429, message: 'This tenant has too many builds queued.' },
  TENANT_UPLOADS_BUSY: {
    status: 429,
    message: 'This tenant has as many uploads being inspected as it may; retry when one ends.',
  },
  UPLOADS_BUSY: {
    status: 429,
    message: 'The daemon is inspecting as many uploads as it allows; retry shortly.',
  },

  // --- secrets API ---
  SECRET_NOT_FOUND: { status: 404, message: 'No such secret.' },
  CACHE_NOT_FOUND: { status: 404, message: 'No such cache.' },
  INVALID_SECRET: { status: 400, message: 'The secret id or value is invalid.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;
