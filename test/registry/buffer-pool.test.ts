import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/registry/buffer-pool.js';

describe('BufferPool', () => {
  it('hands a released buffer out again instead of allocating one', () => {
    const pool = new BufferPool({ bufferBytes: 1024, maxFree: 2 });
    const first = pool.acquire();
    expect(first.length).toBe(1024);
    pool.release(first);
    expect(pool.idle).toBe(1);
    expect(pool.acquire()).toBe(first);
    expect(pool.idle).toBe(0);
    expect(pool.acquire()).not.toBe(first);
  });

  it('keeps at most maxFree buffers, and none of another size', () => {
    const pool = new BufferPool({ bufferBytes: 64, maxFree: 2 });
    const taken = [pool.acquire(), pool.acquire(), pool.acquire()];
    for (const b of taken) pool.release(b);
    expect(pool.idle).toBe(2);
    pool.acquire();
    pool.release(Buffer.alloc(32));
    expect(pool.idle).toBe(1);
  });

  it('refuses sizes that cannot work when it is built', () => {
    expect(() => new BufferPool({ bufferBytes: 0, maxFree: 1 })).toThrow('bufferBytes');
    expect(() => new BufferPool({ bufferBytes: 8, maxFree: -1 })).toThrow('maxFree');
  });
});
