import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BlobPrefetcher } from '../../src/registry/mirror/blob-prefetcher.js';

/** A fetch whose calls settle when the test says so, recording how many run at once. */
class ControlledFetch {
  readonly started: string[] = [];
  running = 0;
  mostAtOnce = 0;
  private readonly pending = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();

  readonly fetch = (item: string): Promise<void> => {
    this.started.push(item);
    this.running += 1;
    this.mostAtOnce = Math.max(this.mostAtOnce, this.running);
    return new Promise<void>((resolve, reject) => {
      this.pending.set(item, { resolve, reject });
    }).finally(() => {
      this.running -= 1;
    });
  };

  settle(item: string, err?: Error): void {
    const p = this.pending.get(item);
    if (p === undefined) throw new Error(`${item} is not running`);
    this.pending.delete(item);
    if (err === undefined) p.resolve();
    else p.reject(err);
  }
}

/** Lets the prefetcher's workers move on after a settle. */
async function turns(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

function prefetcher(fetch: ControlledFetch, perImage = 2, total = 3) {
  return new BlobPrefetcher<string>({
    perImage,
    total,
    fetch: fetch.fetch,
    describe: (item) => ({ item }),
    logger: pino({ level: 'silent' }),
  });
}

describe('BlobPrefetcher', () => {
  it('fetches an image in order, at most perImage at once, and total over all images', async () => {
    const f = new ControlledFetch();
    const p = prefetcher(f);
    p.prefetch(['a1', 'a2', 'a3']);
    p.prefetch(['b1', 'b2']);
    await turns();
    // a takes 2 (its limit), b the one slot left of 3.
    expect(f.started).toEqual(['a1', 'a2', 'b1']);
    f.settle('a1');
    await turns();
    // The freed slot goes to the worker waiting longest (b's second), a3 waits.
    expect(f.started).toEqual(['a1', 'a2', 'b1', 'b2']);
    f.settle('b1');
    await turns();
    expect(f.started).toEqual(['a1', 'a2', 'b1', 'b2', 'a3']);
    for (const item of ['a2', 'b2', 'a3']) f.settle(item);
    await turns();
    expect(p.pending).toBe(0);
    expect(f.mostAtOnce).toBe(3);
  });

  it('goes on past a failed fetch and never lets its rejection out', async () => {
    const f = new ControlledFetch();
    const p = prefetcher(f, 1, 1);
    p.prefetch(['x', 'y']);
    await turns();
    f.settle('x', new Error('digest mismatch'));
    await turns();
    expect(f.started).toEqual(['x', 'y']);
    f.settle('y');
    await turns();
    expect(p.pending).toBe(0);
  });

  it('starts nothing once closed, and close() waits for the fetches running', async () => {
    const f = new ControlledFetch();
    const p = prefetcher(f, 1, 1);
    p.prefetch(['a1', 'a2']);
    p.prefetch(['b1']);
    await turns();
    expect(f.started).toEqual(['a1']);
    let closed = false;
    const closing = p.close().then(() => {
      closed = true;
    });
    await turns();
    expect(closed).toBe(false);
    f.settle('a1');
    await closing;
    expect(f.started).toEqual(['a1']);
    expect(p.pending).toBe(0);
    p.prefetch(['c1']);
    await turns();
    expect(f.started).toEqual(['a1']);
    await p.close();
  });

  it('refuses limits it cannot honour', () => {
    const f = new ControlledFetch();
    expect(() => prefetcher(f, 0, 1)).toThrow(/at least one blob/);
    expect(() => prefetcher(f, 4, 2)).toThrow(/at least its per-image limit/);
  });
});
