/**
 * Tokens whose signature and claims were already verified, so that the next request with the
 * same token skips the ES256 verification (a client sends one token with every request of a
 * pull or push: 50 layers are 100+ requests). A hit is only returned inside the window the
 * token was valid in (`nbf` ≤ now < `exp`, as jose checks them), on the caller's clock; a
 * token not seen before, or evicted, is verified in full. Bounded: past `maxEntries` the
 * oldest entry goes.
 */
export class VerifiedTokenCache<T> {
  private readonly entries = new Map<string, { value: T; nbf: number; exp: number }>();
  private readonly maxEntries: number;

  constructor(options: { maxEntries: number }) {
    if (!(Number.isInteger(options.maxEntries) && options.maxEntries > 0)) {
      throw new Error('verified token cache: maxEntries must be a positive integer');
    }
    this.maxEntries = options.maxEntries;
  }

  /** The value stored for `token` when `nowSeconds` is inside its validity window. */
  get(token: string, nowSeconds: number): T | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (nowSeconds >= entry.exp) {
      this.entries.delete(token);
      return undefined;
    }
    return nowSeconds >= entry.nbf ? entry.value : undefined;
  }

  /** Remembers a verified token valid from `nbf` until before `exp` (seconds since the epoch). */
  set(token: string, value: T, window: { nbf: number; exp: number }): void {
    this.entries.delete(token);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(token, { value, nbf: window.nbf, exp: window.exp });
  }

  get size(): number {
    return this.entries.size;
  }
}
