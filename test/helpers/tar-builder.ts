import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';

/**
 * The one builder of hand-made tar archives for tests, including hostile ones that real tar
 * tools refuse to write (absolute names, `..`, devices, bad links, lying sizes).
 */

/** One raw tar entry. */
export interface RawTarEntry {
  name: string;
  /** '0' file, '1' hardlink, '2' symlink, '3' char dev, '4' block dev, '5' dir, '6' fifo, … */
  type?: string;
  content?: Buffer | string;
  linkName?: string;
  mode?: number;
  /** Size written in the header (defaults to the content length). */
  size?: number;
  mtime?: number;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** A ustar header block plus the padded content, with a correct checksum. */
export function tarEntry(entry: RawTarEntry): Buffer {
  const content =
    entry.content === undefined
      ? Buffer.alloc(0)
      : Buffer.isBuffer(entry.content)
        ? entry.content
        : Buffer.from(entry.content, 'utf8');
  const header = Buffer.alloc(512);
  const name = Buffer.from(entry.name, 'utf8');
  if (name.length > 100) throw new Error('use paxEntry for long names');
  name.copy(header, 0);
  header.write(octal(entry.mode ?? 0o644, 8), 100, 'latin1');
  header.write(octal(0, 8), 108, 'latin1');
  header.write(octal(0, 8), 116, 'latin1');
  header.write(octal(entry.size ?? content.length, 12), 124, 'latin1');
  header.write(octal(entry.mtime ?? 1_700_000_000, 12), 136, 'latin1');
  header.write('        ', 148, 'latin1');
  header.write(entry.type ?? '0', 156, 'latin1');
  if (entry.linkName !== undefined) Buffer.from(entry.linkName, 'utf8').copy(header, 157);
  header.write('ustar\0', 257, 'latin1');
  header.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const pad = (512 - (content.length % 512)) % 512;
  return Buffer.concat([header, content, Buffer.alloc(pad)]);
}

/** A pax extended header ('x') carrying `path` (and optionally `linkpath`). */
export function paxEntry(records: Record<string, string>): Buffer {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len++;
    body += `${len}${rest}`;
  }
  return tarEntry({ name: 'PaxHeader', type: 'x', content: body });
}

/**
 * Joins entries (built blocks or entry descriptions) and appends the two zero blocks that end
 * an archive.
 */
export function tarArchive(...entries: (Buffer | RawTarEntry)[]): Buffer {
  const blocks = entries.map((e) => (Buffer.isBuffer(e) ? e : tarEntry(e)));
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

/** A small valid source tree: a Dockerfile and one file, a symlink and a hardlink. */
export function sampleTar(): Buffer {
  return tarArchive(
    { name: 'app/', type: '5' },
    { name: 'app/Dockerfile', content: 'FROM scratch\nCOPY hello.txt /\n' },
    { name: 'app/hello.txt', content: 'hello\n' },
    { name: 'app/link', type: '2', linkName: 'hello.txt' },
    { name: 'app/hard', type: '1', linkName: 'app/hello.txt' },
  );
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

/** zstd through the `zstd` CLI (installed by scripts/setup.sh; Kiln itself only decompresses). */
export function zstd(data: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c', '-3'], { input: data });
}
