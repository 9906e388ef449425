import { describe, expect, it } from 'vitest';
import { VerifiedTokenCache } from '../../src/auth/verified-token-cache.js';

describe('VerifiedTokenCache', () => {
  it('answers a token only inside its nbf…exp window, and forgets it once expired', () => {
    const cache = new VerifiedTokenCache<string>({ maxEntries: 4 });
    cache.set('t', 'claims', { nbf: 100, exp: 200 });
    expect(cache.get('t', 99)).toBeUndefined();
    expect(cache.get('t', 100)).toBe('claims');
    expect(cache.get('t', 199)).toBe('claims');
    expect(cache.get('t', 200)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.get('t', 150)).toBeUndefined();
  });

  it('drops the oldest token past maxEntries', () => {
    const cache = new VerifiedTokenCache<number>({ maxEntries: 2 });
    const window = { nbf: 0, exp: 1000 };
    cache.set('a', 1, window);
    cache.set('b', 2, window);
    cache.set('c', 3, window);
    expect(cache.size).toBe(2);
    expect(cache.get('a', 10)).toBeUndefined();
    expect(cache.get('b', 10)).toBe(2);
    expect(cache.get('c', 10)).toBe(3);
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new VerifiedTokenCache({ maxEntries: 0 })).toThrow('maxEntries');
  });
});
