/**
 * Pulls exact byte counts out of an async stream of chunks (a decompressed archive), so the
 * tar reader can await each header and body piece and apply back-pressure to decompression.
 */
export class ByteReader {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private done = false;
  /** Total bytes pulled from the source so far. */
  consumed = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** Reads exactly n bytes; returns fewer only at end of stream. */
  async readExact(n: number): Promise<Buffer> {
    while (this.bufferedBytes < n && !this.done) await this.fill();
    return this.take(Math.min(n, this.bufferedBytes));
  }

  /** Reads between 1 and n bytes, or an empty buffer at end of stream. */
  async readUpTo(n: number): Promise<Buffer> {
    if (this.bufferedBytes === 0 && !this.done) await this.fill();
    return this.take(Math.min(n, this.bufferedBytes));
  }

  private async fill(): Promise<void> {
    const r = await this.source.next();
    if (r.done === true) {
      this.done = true;
      return;
    }
    const chunk = r.value;
    if (chunk.length === 0) return;
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    this.consumed += chunk.length;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.buffered[0];
      if (!head) break;
      const want = n - filled;
      if (head.length <= want) {
        head.copy(out, filled);
        filled += head.length;
        this.buffered.shift();
      } else {
        head.copy(out, filled, 0, want);
        this.buffered[0] = head.subarray(want);
        filled += want;
      }
    }
    this.bufferedBytes -= n;
    return out;
  }
}
