import type { Logger } from 'pino';
import type { UploadSessions } from './upload-sessions.js';

/**
 * Runs `UploadSessions.sweep()` every `intervalMs` (real time; what counts as stale is decided
 * by the injected clock inside the sweep). `close()` stops it and waits for a running sweep;
 * it is safe to call twice.
 */
export class UploadSweeper {
  private readonly uploads: UploadSessions;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(options: { uploads: UploadSessions; logger: Logger; intervalMs: number }) {
    if (!(options.intervalMs > 0)) throw new Error('sweep interval must be positive');
    this.uploads = options.uploads;
    this.logger = options.logger;
    this.intervalMs = options.intervalMs;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      this.running = this.running.then(() => this.sweepOnce());
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One sweep; failures are logged, never thrown. */
  async sweepOnce(): Promise<void> {
    try {
      await this.uploads.sweep();
    } catch (err) {
      this.logger.warn({ err }, 'registry: upload sweep failed');
    }
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
