import { describe, expect, it } from 'vitest';
import { reasonOf } from './tar-format-reason.js';
import { ExtendedHeaders, isExtensionType } from '../../common/archive/extended-headers.js';
import type { TarHeader } from '../../common/archive/tar-header.js';

function header(fields: Partial<TarHeader> = {}): TarHeader {
  return {
    name: Buffer.from('plain'),
    mode: 0o644,
    size: 3,
    mtime: 0,
    type: '0',
    linkName: Buffer.from('target'),
    ...fields,
  };
}

function pax(records: Record<string, string>): Buffer {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len++;
    body += `${len}${rest}`;
  }
  return Buffer.from(body);
}

describe('isExtensionType', () => {
  it('names pax and GNU extension headers only', () => {
    expect(['x', 'g', 'L', 'K'].map(isExtensionType)).toEqual([true, true, true, true]);
    expect(['0', '\0', '1', '2', '5', 'S', 'X'].some(isExtensionType)).toBe(false);
  });
});

describe('ExtendedHeaders', () => {
  it('passes a header through unchanged when no extension is pending', () => {
    const ext = new ExtendedHeaders();
    expect(ext.resolve(header())).toEqual(header());
    expect(ext.pending).toBe(false);
  });

  it('gives pax path/linkpath/size precedence over GNU long names over the header', () => {
    const ext = new ExtendedHeaders();
    ext.apply('L', Buffer.from('gnu-name\0'));
    ext.apply('K', Buffer.from('gnu-link\0junk'));
    expect(ext.pending).toBe(true);
    const gnu = ext.resolve(header());
    expect([gnu.name.toString(), gnu.linkName.toString(), gnu.size]).toEqual([
      'gnu-name',
      'gnu-link',
      3,
    ]);
    ext.apply('L', Buffer.from('gnu-name'));
    ext.apply('x', pax({ path: 'pax-name', linkpath: 'pax-link', size: '600' }));
    const both = ext.resolve(header());
    expect([both.name.toString(), both.linkName.toString(), both.size]).toEqual([
      'pax-name',
      'pax-link',
      600,
    ]);
  });

  it('applies extensions to the next entry only', () => {
    const ext = new ExtendedHeaders();
    ext.apply('x', pax({ path: 'long' }));
    expect(ext.resolve(header()).name.toString()).toBe('long');
    expect(ext.pending).toBe(false);
    expect(ext.resolve(header()).name.toString()).toBe('plain');
  });

  it('merges consecutive pax headers, a later record overriding an earlier one', () => {
    const ext = new ExtendedHeaders();
    ext.apply('x', pax({ path: 'first', linkpath: 'kept' }));
    ext.apply('x', pax({ path: 'second' }));
    const entry = ext.resolve(header());
    expect([entry.name.toString(), entry.linkName.toString()]).toEqual(['second', 'kept']);
  });

  it('keeps an empty GNU long name (it is not the header name)', () => {
    const ext = new ExtendedHeaders();
    ext.apply('L', Buffer.alloc(0));
    expect(ext.resolve(header()).name.length).toBe(0);
  });

  it('ignores global pax headers but refuses ones that set a path, link path or size', () => {
    const ext = new ExtendedHeaders();
    ext.apply('g', pax({ mtime: '1700000000', comment: 'x' }));
    expect(ext.pending).toBe(false);
    for (const key of ['path', 'linkpath', 'size']) {
      expect(
        reasonOf(() => {
          ext.apply('g', pax({ [key]: '1' }));
        }),
      ).toBe('pax-global-override');
    }
  });

  it('refuses a malformed pax size', () => {
    expect(
      reasonOf(() => {
        new ExtendedHeaders().apply('x', pax({ size: '1e3' }));
      }),
    ).toBe('pax-size');
  });

  it('refuses a hardlink that carries data, from its header or a pax size', () => {
    expect(reasonOf(() => new ExtendedHeaders().resolve(header({ type: '1' })))).toBe(
      'hardlink-data',
    );
    const ext = new ExtendedHeaders();
    ext.apply('x', pax({ size: '10' }));
    expect(reasonOf(() => ext.resolve(header({ type: '1', size: 0 })))).toBe('hardlink-data');
    expect(new ExtendedHeaders().resolve(header({ type: '1', size: 0 })).size).toBe(0);
  });

  it('reports an extension left without its entry', () => {
    const ext = new ExtendedHeaders();
    expect(() => {
      ext.assertNonePending();
    }).not.toThrow();
    ext.apply('K', Buffer.from('link'));
    expect(
      reasonOf(() => {
        ext.assertNonePending();
      }),
    ).toBe('dangling-extension');
  });
});
