import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

/** A streamed multipart/form-data body and the boundary its Content-Type names. */
export interface MultipartBody {
  boundary: string;
  stream: Readable;
}

/** Quotes a name or filename for a Content-Disposition parameter (RFC 7578 section 4.2). */
function quoted(value: string): string {
  return `"${value.replace(/["\\\r\n]/g, (c) => encodeURIComponent(c))}"`;
}

/**
 * Encodes `fields` and then one file part, in that order (RFC 7578): the daemon validates the
 * fields as they arrive, so a bad field is refused before a byte of the archive is sent. The
 * file part is streamed from `file` with its back-pressure; nothing is buffered whole.
 */
export function multipartBody(
  fields: readonly (readonly [string, string])[],
  file: { name: string; filename: string; contentType: string; stream: Readable },
): MultipartBody {
  const boundary = `kiln-${randomBytes(16).toString('hex')}`;
  async function* parts(): AsyncGenerator<Buffer> {
    for (const [name, value] of fields) {
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name=${quoted(name)}\r\n\r\n${value}\r\n`,
      );
    }
    yield Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name=${quoted(file.name)}; filename=${quoted(file.filename)}\r\nContent-Type: ${file.contentType}\r\n\r\n`,
    );
    for await (const chunk of file.stream) yield chunk as Buffer;
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  const stream = Readable.from(parts(), { objectMode: false });
  stream.on('close', () => {
    file.stream.destroy();
  });
  return { boundary, stream };
}
