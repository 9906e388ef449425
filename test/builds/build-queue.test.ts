import { describe, expect, it } from 'vitest';
import { BuildQueue } from '../../src/builds/build-queue.js';

function drain(queue: BuildQueue): string[] {
  const out: string[] = [];
  for (let e = queue.next(); e; e = queue.next()) out.push(e.id);
  return out;
}

describe('BuildQueue', () => {
  it('serves tenants round-robin and each tenant FIFO', () => {
    const q = new BuildQueue({ maxConcurrent: 100, maxRunningPerTenant: 0 });
    for (const id of ['a1', 'a2', 'a3']) q.enqueue({ id, tenant: 'a' });
    for (const id of ['b1', 'b2']) q.enqueue({ id, tenant: 'b' });
    q.enqueue({ id: 'c1', tenant: 'c' });
    expect(drain(q)).toEqual(['a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
  });

  it('reports positions in the order it will serve', () => {
    const q = new BuildQueue({ maxConcurrent: 1, maxRunningPerTenant: 0 });
    for (const id of ['a1', 'a2', 'a3']) q.enqueue({ id, tenant: 'a' });
    q.enqueue({ id: 'b1', tenant: 'b' });
    expect(['a1', 'a2', 'a3', 'b1'].map((id) => q.position(id))).toEqual([1, 3, 4, 2]);
    expect(q.position('nope')).toBeNull();
    expect(q.next()?.id).toBe('a1');
    expect(['a2', 'a3', 'b1'].map((id) => q.position(id))).toEqual([2, 3, 1]);
  });

  it('gives every waiting build the place drain order then serves it in, after any history', () => {
    // A small deterministic PRNG (mulberry32), so a failure names a reproducible seed.
    for (let seed = 1; seed <= 40; seed++) {
      let state = seed;
      const random = () => {
        state = (state + 0x6d2b79f5) | 0;
        let t = Math.imul(state ^ (state >>> 15), 1 | state);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      const q = new BuildQueue({ maxConcurrent: 1_000_000, maxRunningPerTenant: 0 });
      const running: string[] = [];
      let n = 0;
      for (let step = 0; step < 60; step++) {
        const r = random();
        if (r < 0.6) q.enqueue({ id: `j${n++}`, tenant: `t${Math.floor(random() * 5)}` });
        else if (r < 0.85) {
          const e = q.next();
          if (e) running.push(e.tenant);
        } else if (running.length > 0) {
          q.finished(running.splice(Math.floor(random() * running.length), 1)[0] ?? '');
        }
      }
      const waiting = q.entries().map((e) => e.id);
      const positions = new Map(waiting.map((id) => [id, q.position(id)]));
      const served = drain(q);
      expect(served).toHaveLength(waiting.length);
      expect(
        served.map((id) => positions.get(id)),
        `seed ${seed}`,
      ).toEqual(served.map((_, i) => i + 1));
    }
  });

  it('holds the global concurrency limit until a build finishes', () => {
    const q = new BuildQueue({ maxConcurrent: 2, maxRunningPerTenant: 0 });
    for (const id of ['a1', 'b1', 'c1']) q.enqueue({ id, tenant: id.slice(0, 1) });
    expect(drain(q)).toEqual(['a1', 'b1']);
    expect(q.running).toBe(2);
    q.finished('a');
    expect(drain(q)).toEqual(['c1']);
  });

  it('skips a tenant at its running cap without losing its turn order', () => {
    const q = new BuildQueue({ maxConcurrent: 10, maxRunningPerTenant: 1 });
    for (const id of ['a1', 'a2']) q.enqueue({ id, tenant: 'a' });
    for (const id of ['b1', 'b2']) q.enqueue({ id, tenant: 'b' });
    expect(drain(q)).toEqual(['a1', 'b1']);
    q.finished('b');
    expect(drain(q)).toEqual(['b2']);
    q.finished('a');
    expect(drain(q)).toEqual(['a2']);
  });

  it('removes a waiting build and forgets an emptied tenant', () => {
    const q = new BuildQueue({ maxConcurrent: 10, maxRunningPerTenant: 0 });
    q.enqueue({ id: 'a1', tenant: 'a' });
    q.enqueue({ id: 'b1', tenant: 'b' });
    expect(q.remove('a1')).toEqual({ id: 'a1', tenant: 'a' });
    expect(q.remove('a1')).toBeNull();
    expect(q.get('a1')).toBeUndefined();
    expect(q.length).toBe(1);
    expect(q.queuedFor('a')).toBe(0);
    expect(drain(q)).toEqual(['b1']);
  });

  it('keeps what the caller queued with an entry and hands the same object back', () => {
    const q = new BuildQueue<{ id: string; tenant: string; since: number }>({
      maxConcurrent: 10,
      maxRunningPerTenant: 0,
    });
    const entry = { id: 'a1', tenant: 'a', since: 42 };
    q.enqueue(entry);
    expect(q.get('a1')).toBe(entry);
    expect(q.entries()).toEqual([entry]);
    expect(() => {
      q.enqueue({ ...entry });
    }).toThrow(/already queued/);
    expect(q.next()).toBe(entry);
    expect(q.has('a1')).toBe(false);
    expect(q.entries()).toEqual([]);
  });

  it('refuses a non-positive concurrency limit at construction', () => {
    expect(() => new BuildQueue({ maxConcurrent: 0, maxRunningPerTenant: 0 })).toThrow(RangeError);
  });
});
