import { PassThrough, Transform, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { create as createTar } from 'tar';
import type { BuildContext } from './build-context.js';

const EMPTY_TAR = Buffer.alloc(1024);

/**
 * Packs the listed context into a gzipped tar stream, nothing written to disk. `onTarBytes`
 * counts the uncompressed tar bytes as gzip pulls them (that is what the size estimate is in,
 * and, because the socket pulls gzip, it moves at the upload's pace). Entries are named
 * relative to the context root with portable headers (no owner names, ids or device numbers);
 * `noDirRecurse` because the list already holds exactly what goes in; `strict` so a file
 * that cannot be read fails the upload instead of silently going missing.
 */
export function packBuildContext(
  context: Pick<BuildContext, 'root' | 'entries'>,
  onTarBytes: (bytes: number) => void,
): Readable {
  const out = new PassThrough();
  const gzip = createGzip();
  if (context.entries.length === 0) {
    // `tar` refuses an empty list; an empty context is an empty archive (two zero blocks).
    onTarBytes(EMPTY_TAR.length);
    gzip.on('error', (err) => out.destroy(err));
    gzip.pipe(out);
    gzip.end(EMPTY_TAR);
    return out;
  }
  const tar = createTar(
    { cwd: context.root, portable: true, noDirRecurse: true, strict: true },
    context.entries,
  );
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onTarBytes(chunk.length);
      done(null, chunk);
    },
  });
  const fail = (err: unknown) => {
    out.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  tar.on('error', fail);
  counter.on('error', fail);
  gzip.on('error', fail);
  out.on('close', () => {
    counter.destroy();
    gzip.destroy();
  });
  tar.pipe(counter).pipe(gzip).pipe(out);
  return out;
}
