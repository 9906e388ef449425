import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { isBuildField } from '../builds/build-request-parser.js';
import {
  buildSecretId,
  checkBuildSecretPart,
  MAX_BUILD_SECRETS,
} from '../builds/build-secret-parts.js';
import { SourceInspector, type SourceLimits } from '../builds/source-inspector.js';
import type { ReceivedUpload, UploadTarget } from '../builds/upload-receiver.js';
import { AppError, isAppError } from '../errors/app-error.js';
import { FlushingFileWriter } from '../storage/flushing-file-writer.js';

/** Largest text field accepted (an inline Dockerfile is the biggest). */
const MAX_FIELD_BYTES = 1024 * 1024;

/**
 * How much each stage between the socket and the disk (the multipart parser, the source part,
 * the inspector, the file) may hold. With Node's 16 KiB default every socket chunk waited for
 * the disk write before it; at 1 MiB the stages overlap and the file stream batches what
 * arrived meanwhile into one writev. Bounded: a few of these per upload.
 */
const STAGE_BYTES = 1024 * 1024;

/**
 * Bytes of the source written between two background fdatasyncs. Without them the whole
 * upload stayed dirty in the page cache and the final fsync wrote all of it after the last
 * byte arrived (1.4 s of a 1 GiB upload's 2.8 s); flushing as it goes overlaps the disk with
 * the transfer and leaves the final fsync 0.01-0.08 s. 64 MiB measured no faster and leaves
 * a longer tail.
 */
const FLUSH_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * Streams a multipart POST /builds body: text fields into memory (small, bounded), the
 * `source` file part through the {@link SourceInspector} straight into the target's
 * `partialPath`, with back-pressure from the disk into the request. A field that arrives
 * before the source part is checked at once (`target.checkField`), so a bad value is answered
 * before any of the archive is read; fields after the source are checked by the caller with
 * the rest. The caller owns the target file and removes it whatever happens; this function
 * only guarantees that every stream it opened is closed before it settles. Throws an AppError
 * with the precise code.
 */
export async function receiveBuildUpload(options: {
  /** The request, for its headers and its abort signal. */
  request: Request;
  /** Its body as a node stream (`rawRequestBody`): read here, never through `request.body`. */
  body: Readable | null;
  target: UploadTarget;
  limits: SourceLimits;
}): Promise<ReceivedUpload> {
  const { request, body, target, limits } = options;
  const contentType = request.headers.get('content-type') ?? '';
  if (!/^multipart\/form-data\s*;/i.test(contentType) || body === null) {
    throw new AppError('NOT_MULTIPART');
  }
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { 'content-type': contentType },
      highWaterMark: STAGE_BYTES,
      fileHwm: STAGE_BYTES,
      limits: {
        fieldSize: MAX_FIELD_BYTES,
        fields: 32 + MAX_BUILD_SECRETS,
        parts: 64 + MAX_BUILD_SECRETS,
        headerPairs: 32,
      },
    });
  } catch (err) {
    throw new AppError('NOT_MULTIPART', 'The multipart boundary is missing.', { cause: err });
  }

  const { partialPath } = target;
  const fields = new Map<string, string>();
  const secrets = new Map<string, string>();
  const st: {
    failure: Error | null;
    inspector: SourceInspector | null;
    fileDone: Promise<void> | null;
  } = { failure: null, inspector: null, fileDone: null };
  let rejectAll: (err: Error) => void = () => undefined;

  const fail = (err: Error) => {
    if (st.failure !== null) return;
    st.failure = err;
    body.unpipe(parser);
    // Discard the rest of the body rather than cancelling it under the server's feet: the
    // answer goes out at once and the HTTP server closes the connection after a bounded drain.
    if (request.signal.aborted) body.destroy();
    else body.resume();
    st.inspector?.destroy(err);
    rejectAll(err);
  };
  const onAbort = () => {
    fail(new AppError('UPLOAD_ABORTED'));
  };
  request.signal.addEventListener('abort', onAbort, { once: true });

  const parsed = new Promise<void>((resolve, reject) => {
    rejectAll = reject;
    parser.on('file', (name, stream) => {
      if (st.failure !== null) {
        // Parts already buffered by the parser when the upload failed: discard them.
        stream.resume();
        return;
      }
      if (name !== 'source') {
        stream.resume();
        fail(
          new AppError('UNKNOWN_FIELD', `Unknown file field ${JSON.stringify(name)}.`, {
            details: { field: name },
          }),
        );
        return;
      }
      if (st.inspector !== null) {
        stream.resume();
        fail(new AppError('SOURCE_DUPLICATE'));
        return;
      }
      const current = new SourceInspector(limits, STAGE_BYTES);
      st.inspector = current;
      // 'wx': the build directory is new; a leftover file would be a bug, not something to
      // overwrite. `syncOnFinish`: the file is fsynced before the pipeline resolves, so a
      // build accepted (and stored as queued) keeps its whole source through a crash.
      const done = pipeline(
        stream,
        current,
        new FlushingFileWriter({
          file: partialPath,
          flags: 'wx',
          flushEveryBytes: FLUSH_EVERY_BYTES,
          highWaterMark: STAGE_BYTES,
          syncOnFinish: true,
        }),
      );
      st.fileDone = done;
      done.catch((err: unknown) => {
        fail(
          isAppError(err)
            ? err
            : (st.failure ?? new AppError('UPLOAD_ABORTED', undefined, { cause: err })),
        );
      });
    });
    parser.on('field', (name, value, info) => {
      const secretId = buildSecretId(name);
      if (secretId !== null) {
        try {
          if (info.valueTruncated || info.nameTruncated) {
            throw new AppError('INVALID_BUILD_SECRET', `${name}: the value is too large.`);
          }
          checkBuildSecretPart({
            id: secretId,
            value,
            received: secrets,
            afterSource: st.inspector !== null,
          });
          target.checkBuildSecret(secretId);
        } catch (err) {
          fail(err instanceof Error ? err : new AppError('INTERNAL', undefined, { cause: err }));
          return;
        }
        secrets.set(secretId, value);
      } else if (name === 'source') {
        fail(new AppError('SOURCE_MISSING', 'The "source" field must be a file part.'));
      } else if (!isBuildField(name)) {
        fail(
          new AppError('UNKNOWN_FIELD', `Unknown field ${JSON.stringify(name)}.`, {
            details: { field: name },
          }),
        );
      } else if (fields.has(name)) {
        fail(
          new AppError('DUPLICATE_FIELD', `Field ${name} was sent twice.`, {
            details: { field: name },
          }),
        );
      } else if (info.valueTruncated || info.nameTruncated) {
        fail(
          new AppError('INVALID_FIELD', `${name}: longer than ${MAX_FIELD_BYTES} bytes.`, {
            details: { field: name },
          }),
        );
      } else {
        if (st.inspector === null) {
          try {
            target.checkField(name, value);
          } catch (err) {
            fail(err instanceof Error ? err : new AppError('INTERNAL', undefined, { cause: err }));
            return;
          }
        }
        fields.set(name, value);
      }
    });
    const tooMany = () => {
      fail(new AppError('BAD_REQUEST', 'Too many multipart parts.'));
    };
    parser.on('partsLimit', tooMany);
    parser.on('fieldsLimit', tooMany);
    parser.on('filesLimit', tooMany);
    parser.on('error', (err: unknown) => {
      fail(
        request.signal.aborted
          ? new AppError('UPLOAD_ABORTED')
          : new AppError('BAD_REQUEST', 'The multipart body is malformed or truncated.', {
              cause: err,
            }),
      );
    });
    parser.on('close', () => {
      resolve();
    });
    body.on('error', (err) => {
      fail(new AppError('UPLOAD_ABORTED', undefined, { cause: err }));
    });
    body.pipe(parser);
  });

  try {
    await parsed;
    if (st.fileDone === null || st.inspector === null) throw new AppError('SOURCE_MISSING');
    await st.fileDone;
    if (st.failure !== null) throw st.failure;
    return { fields, secrets, source: st.inspector.summary };
  } catch (err) {
    const error = st.failure ?? (err instanceof Error ? err : new AppError('INTERNAL'));
    fail(error);
    // Wait for the file to be closed so the caller can remove the directory for good.
    if (st.fileDone !== null) await st.fileDone.catch(() => undefined);
    throw error;
  } finally {
    request.signal.removeEventListener('abort', onAbort);
    if (!body.destroyed) body.resume();
  }
}
