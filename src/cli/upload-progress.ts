import { Presets, SingleBar } from 'cli-progress';
import { formatBytes, formatSeconds } from './parse-units.js';
import type { Clock } from '../../common/time/clock.js';

/** Shows how far the context upload got. */
export interface UploadProgress {
  /** `bytes` more of the (estimated) total went out. */
  advance(bytes: number): void;
  /** The upload ended (accepted or not). */
  stop(): void;
}

export interface UploadProgressOptions {
  total: number;
  clock: Clock;
  /** Where plain lines go (stderr), when `terminal` is absent. */
  write: (text: string) => void;
  /** The terminal to draw a bar on (stderr when it is a TTY). */
  terminal?: NodeJS.WritableStream;
}

function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : '-';
}

/**
 * A progress bar on a terminal (cli-progress: bytes, rate, ETA, redrawn in place), else plain
 * lines at each quarter so a CI log shows the upload moving without a line per chunk.
 */
export function createUploadProgress(options: UploadProgressOptions): UploadProgress {
  const { total, clock, write } = options;
  const started = clock.now().getTime();
  const elapsed = () => (clock.now().getTime() - started) / 1000;
  let sent = 0;
  if (options.terminal) {
    const bar = new SingleBar(
      {
        stream: options.terminal,
        format:
          'uploading context [{bar}] {percentage}% {sentText}/{totalText} {rateText} ETA {eta_formatted}',
        barsize: 24,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
        fps: 8,
      },
      Presets.shades_classic,
    );
    const payload = () => ({
      sentText: formatBytes(sent),
      totalText: formatBytes(Math.max(total, sent)),
      rateText: rate(sent, elapsed()),
    });
    bar.start(total, 0, payload());
    return {
      advance(bytes) {
        sent += bytes;
        bar.setTotal(Math.max(total, sent));
        bar.update(sent, payload());
      },
      stop() {
        bar.update(sent, payload());
        bar.stop();
      },
    };
  }
  let quarter = 0;
  write(`uploading context: ${formatBytes(total)}\n`);
  return {
    advance(bytes) {
      sent += bytes;
      const reached = Math.min(3, Math.floor((sent / Math.max(total, 1)) * 4));
      while (quarter < reached) {
        quarter += 1;
        write(
          `uploading context: ${quarter * 25}% (${formatBytes(sent)}, ${rate(sent, elapsed())})\n`,
        );
      }
    },
    stop() {
      write(
        `uploaded context: ${formatBytes(sent)} in ${formatSeconds(elapsed())} (${rate(sent, elapsed())})\n`,
      );
    },
  };
}
