/**
 * Keeps the last `maxLines` complete lines of a stream of text chunks (plus the unterminated rest),
 * for the log tail a failed build carries (docs/contracts.md#build-statuses).
 */
export class LogTailBuffer {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly maxLines = 50) {}

  push(data: string): void {
    const parts = (this.partial + data).replace(/\r\n/g, '\n').split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.lines.push(line);
    if (this.lines.length > this.maxLines) this.lines = this.lines.slice(-this.maxLines);
    // A single huge line without newline must not grow without bound.
    if (this.partial.length > 64 * 1024) this.partial = this.partial.slice(-64 * 1024);
  }

  /** The kept lines, the unterminated rest last. */
  tail(): string[] {
    const all = this.partial === '' ? [...this.lines] : [...this.lines, this.partial];
    return all.slice(-this.maxLines);
  }
}
