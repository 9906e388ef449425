import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LogSink, splitUtf8 } from '../../agent/logs/log-sink.js';
import { MessageWriter } from '../../agent/protocol/message-writer.js';
import type { AgentMessage } from '../../common/protocol/agent-messages.js';
import { ManualClock } from '../helpers/manual-clock.js';

const clock = new ManualClock(42);

/** A host that reads only when told to: its buffer fills and writes must wait. */
function slowHost(): {
  stream: Writable;
  lines: () => AgentMessage[];
  release: () => void;
  pending: () => number;
} {
  const chunks: Buffer[] = [];
  const held: (() => void)[] = [];
  const stream = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      held.push(cb);
    },
  });
  return {
    stream,
    lines: () =>
      Buffer.concat(chunks)
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as AgentMessage),
    release: () => {
      for (const cb of held.splice(0)) cb();
    },
    pending: () => held.length,
  };
}

describe('MessageWriter and LogSink', () => {
  it('waits for drain instead of dropping when the host reads slowly', async () => {
    const host = slowHost();
    const sink = new LogSink(new MessageWriter(host.stream), clock);
    let done = false;
    const writing = (async () => {
      for (let i = 0; i < 20; i++) await sink.write('stdout', `line ${i}\n`);
      done = true;
    })();
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    expect(host.pending()).toBe(1);
    while (!done) {
      host.release();
      await new Promise((r) => setImmediate(r));
    }
    await writing;
    const data = host.lines().map((m) => (m.type === 'log' ? m.data : ''));
    expect(data).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i}\n`));
  });

  it('splits long output into chunks of at most the limit without cutting characters', async () => {
    const sent: AgentMessage[] = [];
    const sink = new LogSink({ send: (m) => (sent.push(m), Promise.resolve()) }, clock, 50, 10);
    const text = 'ééééé-abcdefghij€€€';
    await sink.write('stderr', text);
    const parts = sent.map((m) => (m.type === 'log' ? m.data : ''));
    expect(parts.join('')).toBe(text);
    for (const p of parts) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(10);
    expect(sent[0]).toMatchObject({ type: 'log', stream: 'stderr', at: 42 });
    expect(splitUtf8('abc', 10)).toEqual(['abc']);
  });

  it('keeps the last lines for the error result', async () => {
    const sink = new LogSink({ send: () => Promise.resolve() }, clock, 3);
    await sink.write('stdout', 'one\ntwo\nthree\nfour\npart');
    expect(sink.lastLines()).toEqual(['three', 'four', 'part']);
  });

  it('rejects sends once the channel is closed', async () => {
    const host = slowHost();
    const writer = new MessageWriter(host.stream);
    host.stream.destroy();
    await expect(
      writer.send({ type: 'log', stream: 'system', data: 'x', at: 1 }),
    ).rejects.toThrow();
  });
});
