import { ArchiveError } from './archive-error.js';
import { MAX_METADATA_BYTES, type ArchiveLimits } from './archive-limits.js';
import { SourceArchivePolicy, type SourceEntry } from './source-archive-policy.js';
import { TarDecoder } from './tar-decoder.js';
import { isTarFormatError } from './tar-format-error.js';

/** What the reader found in the bytes pushed so far, in stream order. */
export type SourceEvent =
  | { kind: 'entry'; entry: SourceEntry }
  /** Content of the last `file` entry (a view into the pushed chunk; copy to keep). */
  | { kind: 'data'; chunk: Buffer };

/** What a complete, valid archive held. */
export interface SourceArchiveSummary {
  entries: number;
  unpackedBytes: number;
}

/**
 * A source archive read under the one archive policy: the shared {@link TarDecoder} feeds
 * every entry through {@link SourceArchivePolicy}, and every failure leaves as an
 * {@link ArchiveError} with the code both sides use. The host pushes the upload through it
 * and drops the data; the guest writes each entry and its data to disk.
 */
export class SourceArchiveReader {
  private readonly decoder = new TarDecoder(MAX_METADATA_BYTES);
  private readonly policy: SourceArchivePolicy;
  private inFile = false;

  constructor(limits: ArchiveLimits) {
    this.policy = new SourceArchivePolicy(limits);
  }

  /** Reads the next bytes of the (decompressed) archive. */
  push(data: Uint8Array): SourceEvent[] {
    try {
      const out: SourceEvent[] = [];
      for (const event of this.decoder.push(data)) {
        switch (event.kind) {
          case 'entry': {
            const entry = this.policy.entry(event.header);
            this.inFile = entry.kind === 'file';
            out.push({ kind: 'entry', entry });
            break;
          }
          case 'data':
            // Bodies of directories and symlinks carry nothing to write; they are skipped.
            if (this.inFile) out.push(event);
            break;
          case 'end':
            this.inFile = false;
            break;
        }
      }
      return out;
    } catch (err) {
      throw this.toArchiveError(err);
    }
  }

  /** Called at the end of the stream: checks the archive ended properly and its symlinks. */
  end(): SourceArchiveSummary {
    try {
      this.decoder.end();
      this.policy.finish();
    } catch (err) {
      throw this.toArchiveError(err);
    }
    return { entries: this.policy.entries, unpackedBytes: this.policy.unpackedBytes };
  }

  /**
   * The code of each decoding failure: a bad checksum before the first entry, an empty
   * stream or an archive with no entries mean the source is not a tar archive at all.
   */
  private toArchiveError(err: unknown): unknown {
    if (!isTarFormatError(err)) return err;
    const reason = err.reason;
    const options = { cause: err };
    switch (reason) {
      case 'empty':
      case 'no-entries':
        return new ArchiveError(
          'SOURCE_NOT_ARCHIVE',
          `the source is not a tar archive (${err.message})`,
          options,
        );
      case 'checksum':
        return this.decoder.entries === 0
          ? new ArchiveError(
              'SOURCE_NOT_ARCHIVE',
              `the source is not a tar archive (${err.message})`,
              options,
            )
          : new ArchiveError('SOURCE_CORRUPT', `the archive is corrupt: ${err.message}`, options);
      case 'pax-global-override':
        return new ArchiveError('SOURCE_FORBIDDEN_ENTRY', err.message, options);
      case 'metadata-too-large':
        return new ArchiveError('SOURCE_PATH_TOO_LONG', err.message, {
          ...options,
          limit: MAX_METADATA_BYTES,
        });
      case 'truncated':
      case 'number':
      case 'pax-record':
      case 'pax-size':
      case 'dangling-extension':
      case 'hardlink-data':
      case 'no-end-marker':
      case 'data-after-end':
        return new ArchiveError(
          'SOURCE_CORRUPT',
          `the archive is corrupt: ${err.message}`,
          options,
        );
    }
  }
}
