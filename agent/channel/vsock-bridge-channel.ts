import type { AgentChannel } from './agent-channel.js';
import { openSocatBridge } from './socat-bridge.js';

/**
 * Dials the host over vsock (CID 2: the host, as Cloud Hypervisor's hybrid vsock presents
 * it) on `port`, through socat (Node has no AF_VSOCK; see openSocatBridge).
 */
export function openVsockBridgeChannel(port: number, cid = 2, socatPath = 'socat'): AgentChannel {
  return openSocatBridge(`VSOCK-CONNECT:${cid}:${port}`, socatPath);
}
