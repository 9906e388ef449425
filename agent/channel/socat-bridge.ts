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
export function openSocatBridge(address: string, socatPath = 'socat'): AgentChannel {
  const child = spawn(socatPath, ['-b', '65536', '-', address], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  // A failed spawn or a broken pipe surfaces as the input ending; never as a crash.
  child.on('error', () => {
    child.stdout.destroy();
  });
  child.stdin.on('error', () => undefined);
  let closed = false;
  return {
    input: child.stdout,
    output: child.stdin,
    close() {
      if (closed) return;
      closed = true;
      child.stdin.end();
      child.kill('SIGTERM');
    },
  };
}
