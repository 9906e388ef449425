import { spawn } from 'node:child_process';
import type { AgentChannel } from './agent-channel.js';

/**
 * Connects to `address` (a socat address) through a `socat` child process and returns its
 * stdin/stdout as the channel.
 *
 * Why socat and not a direct descriptor: Node has no AF_VSOCK sockets, and it cannot poll a
 * character device either (libuv treats it as a file and reads it on a thread-pool thread,
 * which blocks there for as long as the host is silent and then keeps the process from
 * exiting). socat ships in Debian, is robust, polls both ends properly, and needs no native
 * addon built for the guest's Node ABI. Pipes give real back-pressure: when the host stops
 * reading, socat blocks on its write, the pipe fills, and our writes wait for `drain`.
 */
export function openSocatBridge(
  address: string,
  socatPath = 'socat',
  flushTimeoutMs = 3000,
): AgentChannel {
  const child = spawn(socatPath, ['-b', '65536', '-', address], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
    // A failed spawn or a broken pipe surfaces as the input ending; never as a crash.
    child.once('error', () => {
      child.stdout.destroy();
      resolve();
    });
  });
  child.stdin.on('error', () => undefined);
  let closing: Promise<void> | null = null;
  return {
    input: child.stdout,
    output: child.stdin,
    close() {
      // End of our stdin makes socat write out what it still holds and exit (after its
      // half-close timeout, 0.5 s); killing it straight away could lose the last message.
      closing ??= (async () => {
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), flushTimeoutMs);
        await exited;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
