import type { Hash } from 'node:crypto';
import { OciError } from './oci-error.js';
import { FlushingFileWriter } from '../storage/flushing-file-writer.js';

/**
 * Bytes written between two background flushes. Without them the kernel keeps a whole layer
 * dirty in memory and the commit's fsync then writes all of it to disk while the client waits
 * for the PUT: a third of a 256 MiB push. Flushing as the bytes arrive overlaps that disk time
 * with receiving, and the commit's fsync only has the tail left.
 */
const FLUSH_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * The sink of one registry upload chunk: appends to the upload file, hashes the bytes on the
 * way (`hash`, when the upload's running hash is still in step with the file) and stops with
 * 416 at the first byte past `maxBytes` (the chunk's Content-Range or the blob size limit). A
 * {@link FlushingFileWriter}: buffered chunks go to the file in one `writev` and the file is
 * flushed in the background every FLUSH_EVERY_BYTES. Durability is still the commit's fsync;
 * the flushes only shorten it.
 */
export class UploadFileWriter extends FlushingFileWriter {
  constructor(options: {
    file: string;
    hash?: Hash | undefined;
    maxBytes?: number | undefined;
    highWaterMark: number;
  }) {
    const { file, hash, maxBytes, highWaterMark } = options;
    super({
      file,
      flags: 'a',
      flushEveryBytes: FLUSH_EVERY_BYTES,
      highWaterMark,
      hash,
      limit:
        maxBytes === undefined
          ? undefined
          : {
              bytes: maxBytes,
              error: () =>
                new OciError('BLOB_UPLOAD_INVALID', 'chunk is longer than its Content-Range', {
                  status: 416,
                }),
            },
    });
  }
}
