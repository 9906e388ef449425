import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';

/** One entry of a hand-made tar archive (tests need entries real tar tools refuse to write). */
export interface TarEntry {
  name: string;
  type?: '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x' | 'L';
  data?: Buffer | string;
  linkname?: string;
  /** Size written in the header when it must differ from the data. */
  size?: number;
}

function field(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'utf8');
}

function octal(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, '0')}\0`;
}

/** A ustar header block with a correct checksum. */
export function tarHeader(entry: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  field(h, 0, 100, entry.name);
  field(h, 100, 8, octal(0o644, 8));
  field(h, 108, 8, octal(0, 8));
  field(h, 116, 8, octal(0, 8));
  field(h, 124, 12, octal(size, 12));
  field(h, 136, 12, octal(1_700_000_000, 12));
  h.fill(0x20, 148, 156);
  field(h, 156, 1, entry.type ?? '0');
  field(h, 157, 100, entry.linkname ?? '');
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** A tar archive of `entries`, ended by two zero blocks. */
export function makeTar(entries: TarEntry[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
    parts.push(tarHeader(e, e.size ?? data.length));
    parts.push(data);
    const pad = (512 - (data.length % 512)) % 512;
    parts.push(Buffer.alloc(pad));
  }
  if (options.end ?? true) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A small valid source tree: a Dockerfile and one file. */
export function sampleTar(): Buffer {
  return makeTar([
    { name: 'app/', type: '5' },
    { name: 'app/Dockerfile', data: 'FROM scratch\nCOPY hello.txt /\n' },
    { name: 'app/hello.txt', data: 'hello\n' },
    { name: 'app/link', type: '2', linkname: 'hello.txt' },
    { name: 'app/hard', type: '1', linkname: 'app/hello.txt' },
  ]);
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

/** zstd-compresses with the zstd CLI (installed by scripts/setup.sh). */
export function zstd(data: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c', '-'], { input: data });
}
