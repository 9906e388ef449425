import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { REPO_ROOT } from './e2e-daemon.js';

const execFileAsync = promisify(execFile);

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * `kiln` running in a real pseudo-terminal: one pane on a private tmux server (its own
 * socket, so `close()` stops only this server). The pane stays on screen after the process
 * exits.
 */
export class KilnPane {
  private readonly socket = `kiln-cli-test-${process.pid}-${randomBytes(4).toString('hex')}`;

  private readonly statusFile: string;

  private constructor(private readonly workDir: string) {
    this.statusFile = path.join(workDir, `${this.socket}.status`);
  }

  /** Starts `kiln <args>` (src/cli/kiln.ts under tsx) in a 100×30 pane, cwd `workDir`. */
  static async start(
    workDir: string,
    args: string[],
    env: Record<string, string>,
  ): Promise<KilnPane> {
    const pane = new KilnPane(workDir);
    await pane.spawn(args, env);
    return pane;
  }

  private async tmux(...args: string[]): Promise<string> {
    return (await execFileAsync('tmux', ['-L', this.socket, ...args])).stdout;
  }

  private async spawn(args: string[], env: Record<string, string>): Promise<void> {
    const conf = path.join(this.workDir, `${this.socket}.conf`);
    await writeFile(conf, 'set -g remain-on-exit on\nset -g history-limit 5000\n');
    const command = [
      'env',
      ...Object.entries({ HOME: this.workDir, TERM: 'xterm-256color', ...env }).map(
        ([k, v]) => `${k}=${v}`,
      ),
      process.execPath,
      // tsx by path: in the pane's working directory the bare name `tsx` does not resolve.
      '--import',
      pathToFileURL(path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href,
      path.join(REPO_ROOT, 'src', 'cli', 'kiln.ts'),
      ...args,
    ]
      .map(shellQuote)
      .join(' ');
    // The pane's shell records the exit status itself: tmux 3.3 sometimes marks a pane dead
    // without its status. `trap : INT` keeps that shell alive through Ctrl-C (kiln, its child,
    // gets the default SIGINT disposition back on exec and handles the signal itself).
    const script = `trap : INT; ${command}; echo $? > ${shellQuote(this.statusFile)}`;
    await this.tmux(
      '-f',
      conf,
      'new-session',
      '-d',
      '-s',
      'kiln',
      '-x',
      '100',
      '-y',
      '30',
      '-c',
      this.workDir,
      script,
    );
  }

  /** The pane's screen and scroll-back as text. */
  screen(): Promise<string> {
    return this.tmux('capture-pane', '-p', '-J', '-S', '-', '-t', 'kiln');
  }

  /** Types keys into the pane (tmux key names: `C-c` is Ctrl-C). */
  async sendKeys(keys: string): Promise<void> {
    await this.tmux('send-keys', '-t', 'kiln', keys);
  }

  /** Polls the screen until it shows `text`; returns the screen. */
  async waitFor(text: string | RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const shown = await this.screen();
      if (typeof text === 'string' ? shown.includes(text) : text.test(shown)) return shown;
      if (Date.now() > deadline) {
        throw new Error(`the screen never showed ${String(text)}:\n${shown}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Resolves with kiln's exit status once it has ended. */
  async exitStatus(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await readFile(this.statusFile, 'utf8').catch(() => '');
      if (text.endsWith('\n')) return Number(text.trim());
      if (Date.now() > deadline) throw new Error(`kiln still running:\n${await this.screen()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops this pane's tmux server (and the process in it). Safe to call twice. */
  async close(): Promise<void> {
    await this.tmux('kill-server').catch(() => undefined);
  }
}
