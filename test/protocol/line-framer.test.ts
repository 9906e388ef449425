import { describe, expect, it } from 'vitest';
import { encodeMessage, LineFramer } from '../../common/protocol/line-framer.js';

describe('LineFramer', () => {
  it('splits messages across arbitrary chunk boundaries', () => {
    const framer = new LineFramer();
    const bytes = Buffer.concat([
      encodeMessage({ type: 'hello' }),
      encodeMessage({ type: 'log', data: 'é\n' } as { type: string }),
    ]);
    const out = [];
    for (let i = 0; i < bytes.length; i += 3) out.push(...framer.push(bytes.subarray(i, i + 3)));
    expect(out).toEqual([
      { kind: 'message', value: { type: 'hello' } },
      { kind: 'message', value: { type: 'log', data: 'é\n' } },
    ]);
    expect(framer.end()).toEqual([]);
  });

  it('reports an oversized line once and resumes after its newline', () => {
    const framer = new LineFramer(32);
    const events = [
      ...framer.push(Buffer.from('{"type":"x","pad":"' + 'a'.repeat(40))),
      ...framer.push(Buffer.from('aaaa"}\n{"type":"ok"}\n')),
    ];
    expect(events.map((e) => (e.kind === 'error' ? e.reason : 'message'))).toEqual([
      'oversized',
      'message',
    ]);
  });

  it('reports invalid JSON, non-objects and a trailing partial line', () => {
    const framer = new LineFramer();
    const events = framer.push(Buffer.from('nope\n[1]\n{"no":"type"}\n\n{"type":"a"'));
    expect(events.map((e) => (e.kind === 'error' ? e.reason : 'message'))).toEqual([
      'invalid_json',
      'not_an_object',
      'not_an_object',
    ]);
    expect(framer.end()).toEqual([
      { kind: 'error', reason: 'invalid_json', detail: 'stream ended inside a message' },
    ]);
  });

  it('refuses to encode a message over the limit', () => {
    expect(() =>
      encodeMessage({ type: 'x', pad: 'a'.repeat(100) } as { type: string }, 64),
    ).toThrow(RangeError);
  });
});
