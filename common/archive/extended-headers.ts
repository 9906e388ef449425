import { parsePaxRecords, parsePaxSize } from './pax-records.js';
import { TarFormatError } from './tar-format-error.js';
import { cBytes, type TarHeader } from './tar-header.js';

/**
 * Header types whose body describes the next entry instead of being one: pax extended ('x')
 * and global ('g') headers, GNU long name ('L') and long link name ('K').
 */
export function isExtensionType(type: string): boolean {
  return type === 'x' || type === 'g' || type === 'L' || type === 'K';
}

/**
 * The pax and GNU extensions read so far for the next entry. Feed it every extension body
 * (read with the extension header's own size) and resolve each ordinary header through it:
 * pax `path`/`linkpath`/`size` take precedence over GNU 'L'/'K', which take precedence over
 * the header fields, and all of them apply to the next entry only.
 */
export class ExtendedHeaders {
  private path: Buffer | null = null;
  private linkPath: Buffer | null = null;
  private size: number | null = null;
  private longName: Buffer | null = null;
  private longLink: Buffer | null = null;
  private waiting = false;

  /** True while an 'x', 'L' or 'K' header waits for the entry it describes. */
  get pending(): boolean {
    return this.waiting;
  }

  /** Applies the body of an extension header of `type` (see isExtensionType). */
  apply(type: string, body: Buffer): void {
    switch (type) {
      case 'L':
        this.longName = cBytes(body);
        break;
      case 'K':
        this.longLink = cBytes(body);
        break;
      case 'g': {
        // Global records would apply to every later entry; Kiln never honours name or size
        // overrides there, so an archive relying on them cannot be read faithfully.
        const records = parsePaxRecords(body);
        if (records.has('path') || records.has('linkpath') || records.has('size')) {
          throw new TarFormatError(
            'pax-global-override',
            'a global pax header sets a path, link path or size',
          );
        }
        return;
      }
      case 'x': {
        const records = parsePaxRecords(body);
        this.path = records.get('path') ?? this.path;
        this.linkPath = records.get('linkpath') ?? this.linkPath;
        const size = records.get('size');
        if (size !== undefined) this.size = parsePaxSize(size);
        break;
      }
      default:
        throw new Error(`not a tar extension header type: ${JSON.stringify(type)}`);
    }
    this.waiting = true;
  }

  /**
   * The entry `header` describes once the pending extensions are applied; clears them. A
   * hardlink must carry no data: ustar says its size is zero, GNU tar ignores the field and
   * other readers skip that many bytes, so a non-zero size would let readers disagree on
   * where the next header starts.
   */
  resolve(header: TarHeader): TarHeader {
    const entry: TarHeader = {
      ...header,
      name: this.path ?? this.longName ?? header.name,
      linkName: this.linkPath ?? this.longLink ?? header.linkName,
      size: this.size ?? header.size,
    };
    this.path = this.linkPath = this.longName = this.longLink = null;
    this.size = null;
    this.waiting = false;
    if (entry.type === '1' && entry.size !== 0) {
      throw new TarFormatError('hardlink-data', 'a hardlink entry carries data');
    }
    return entry;
  }

  /** Throws unless every extension header read so far has been followed by its entry. */
  assertNonePending(): void {
    if (this.waiting) {
      throw new TarFormatError(
        'dangling-extension',
        'an extended header is not followed by an entry',
      );
    }
  }
}
