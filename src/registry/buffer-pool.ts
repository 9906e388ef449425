/**
 * A free list of equally sized buffers, kept across requests. Each blob download reads its
 * file into two large buffers; allocating them fresh per download (a pull of 50 layers makes
 * 50 downloads) is external memory V8 must account for, and every few MiB of it triggers a
 * full garbage collection: in a profile of 50-layer pulls the collector took more CPU than the
 * downloads' own reads and writes. Reusing them keeps that memory out of the collector's way.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  readonly bufferBytes: number;
  private readonly maxFree: number;

  /** `maxFree` bounds the memory kept while idle: `maxFree × bufferBytes`. */
  constructor(options: { bufferBytes: number; maxFree: number }) {
    if (!(Number.isInteger(options.bufferBytes) && options.bufferBytes > 0)) {
      throw new Error('buffer pool: bufferBytes must be a positive integer');
    }
    if (!(Number.isInteger(options.maxFree) && options.maxFree >= 0)) {
      throw new Error('buffer pool: maxFree must be a non-negative integer');
    }
    this.bufferBytes = options.bufferBytes;
    this.maxFree = options.maxFree;
  }

  /** A buffer of `bufferBytes` (contents undefined): a free one, or a new one. */
  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  /**
   * Gives `buffer` back for reuse. Only once nothing will read or write it any more (a socket
   * write that has not called back still may); beyond `maxFree` it is left to the collector.
   */
  release(buffer: Buffer): void {
    if (buffer.length !== this.bufferBytes || this.free.length >= this.maxFree) return;
    this.free.push(buffer);
  }

  /** Buffers waiting to be reused. */
  get idle(): number {
    return this.free.length;
  }
}
