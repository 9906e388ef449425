import { spawn } from 'node:child_process';
import type { AgentChannel } from './agent-channel.js';

/**
 * Dials the host over vsock (CID 2, Cloud Hypervisor hybrid vsock) through a `socat` child
 * process and speaks over its stdin/stdout.
 *
 * Why a bridge: Node has no AF_VSOCK sockets. socat ships in Debian (it is in the image for
 * the registry tunnel anyway), is robust and well understood, and needs no native addon
 * compiled for the guest's Node ABI. The cost is one extra process and a pipe copy, which is
 * negligible next to a build.
 */
export function openVsockBridgeChannel(port: number, cid = 2, socatPath = 'socat'): AgentChannel {
  const child = spawn(socatPath, ['-b', '65536', '-', `VSOCK-CONNECT:${cid}:${port}`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
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
