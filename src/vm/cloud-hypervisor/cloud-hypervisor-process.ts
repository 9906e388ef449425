import { spawn, type ChildProcess } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { access } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { CloudHypervisorApiClient } from './cloud-hypervisor-api-client.js';
import {
  CloudHypervisorEventParser,
  type CloudHypervisorEvent,
} from './cloud-hypervisor-event-parser.js';
import { VmError } from '../vm-error.js';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Child fd on which the VMM writes its event-monitor stream (`--event-monitor fd=3`). */
const EVENT_MONITOR_FD = 3;
const STDERR_TAIL_LINES = 20;

/**
 * One `cloud-hypervisor` process started with `--api-socket path=…` and `--event-monitor
 * fd=3` (cloud-hypervisor/src/main.rs), before any VM exists. `start()` resolves once the API
 * answers `vmm.ping`; the wait follows the socket file with inotify and the process's exit, and
 * gives up at `startTimeoutMs`.
 */
export class CloudHypervisorProcess {
  readonly api: CloudHypervisorApiClient;
  readonly exited: Promise<ProcessExit>;
  private readonly child: ChildProcess;
  private exit: ProcessExit | undefined;
  private readonly stderrTail: string[] = [];

  private constructor(
    child: ChildProcess,
    readonly apiSocketPath: string,
    private readonly logger: Logger,
    onEvent: (event: CloudHypervisorEvent) => void,
  ) {
    this.child = child;
    this.api = new CloudHypervisorApiClient({ socketPath: apiSocketPath });
    this.exited = new Promise((resolve) => {
      // 'close' comes after 'exit' once stdout, stderr and the event fd are drained, so every
      // event the VMM wrote has been seen before `exited` resolves.
      child.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    const parser = new CloudHypervisorEventParser();
    const events = child.stdio[EVENT_MONITOR_FD] as Readable | null | undefined;
    events?.on('data', (chunk: Buffer) => {
      for (const event of parser.push(chunk)) onEvent(event);
    });
    events?.on('error', () => undefined);
    child.stdout?.on('data', (chunk: Buffer) => {
      this.logger.debug({ output: chunk.toString('utf8').trimEnd() }, 'cloud-hypervisor stdout');
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
        this.logger.info({ line }, 'cloud-hypervisor stderr');
      }
    });
  }

  get pid(): number {
    // Only constructed after the 'spawn' event, so the pid exists.
    return this.child.pid ?? -1;
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  /** Last lines the VMM wrote to stderr, for error messages. */
  stderr(): string {
    return this.stderrTail.join('\n');
  }

  static async start(options: {
    binary: string;
    apiSocketPath: string;
    logger: Logger;
    onEvent: (event: CloudHypervisorEvent) => void;
    startTimeoutMs: number;
    extraArgs?: string[] | undefined;
  }): Promise<CloudHypervisorProcess> {
    const args = [
      '--api-socket',
      `path=${options.apiSocketPath}`,
      '--event-monitor',
      `fd=${EVENT_MONITOR_FD}`,
      ...(options.extraArgs ?? []),
    ];
    const child = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => {
        reject(
          new VmError('VMM_START_FAILED', `cannot run ${options.binary}: ${err.message}`, {
            cause: err,
          }),
        );
      });
    });
    const proc = new CloudHypervisorProcess(
      child,
      options.apiSocketPath,
      options.logger,
      options.onEvent,
    );
    options.logger.debug({ pid: proc.pid, args }, 'cloud-hypervisor spawned');
    try {
      await proc.waitForApi(options.startTimeoutMs);
    } catch (err) {
      await proc.kill();
      throw err;
    }
    return proc;
  }

  /** SIGKILLs the process (if still running) and resolves once it is gone. Idempotent. */
  async kill(): Promise<ProcessExit> {
    if (this.exit === undefined) this.child.kill('SIGKILL');
    return this.exited;
  }

  private async waitForApi(timeoutMs: number): Promise<void> {
    const dir = dirname(this.apiSocketPath);
    const name = basename(this.apiSocketPath);
    let wake: (() => void) | undefined;
    let watcher: FSWatcher | undefined;
    let timer: NodeJS.Timeout | undefined;
    const deadline = { passed: false };
    const nudge = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    try {
      watcher = watch(dir, (_event, file) => {
        if (file === name) nudge();
      });
      watcher.on('error', () => undefined);
      timer = setTimeout(() => {
        deadline.passed = true;
        nudge();
      }, timeoutMs);
      void this.exited.then(nudge);
      for (;;) {
        if (this.exit !== undefined) {
          throw new VmError(
            'VMM_START_FAILED',
            `cloud-hypervisor exited (code ${this.exit.code}, signal ${this.exit.signal}) before its API socket answered${this.stderr() === '' ? '' : `: ${this.stderr()}`}`,
          );
        }
        if (deadline.passed) {
          throw new VmError(
            'VMM_START_FAILED',
            `cloud-hypervisor API socket ${this.apiSocketPath} did not answer within ${timeoutMs} ms`,
          );
        }
        const waitForChange = new Promise<void>((resolve) => {
          wake = resolve;
        });
        const exists = await access(this.apiSocketPath).then(
          () => true,
          () => false,
        );
        if (exists) {
          try {
            await this.api.ping();
            return;
          } catch (err) {
            // Bound but not yet listening (ECONNREFUSED) is a window of microseconds; try
            // again shortly. Any other failure is final.
            const code = ((err as VmError).cause as NodeJS.ErrnoException | undefined)?.code;
            if (code !== 'ECONNREFUSED' && code !== 'ENOENT') throw err;
            setTimeout(nudge, 10);
          }
        }
        await waitForChange;
      }
    } finally {
      watcher?.close();
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}
