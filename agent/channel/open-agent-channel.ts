import type { AgentChannel } from './agent-channel.js';
import { findSerialPort, openSerialPortChannel } from './serial-port-channel.js';
import { openVsockBridgeChannel } from './vsock-bridge-channel.js';
import { AGENT_SERIAL_PORT_NAME, AGENT_VSOCK_PORT } from '../../common/protocol/agent-messages.js';

export type ChannelSpec = { kind: 'serial'; name: string } | { kind: 'vsock'; port: number };

/**
 * Parses `kiln.channel=serial:<name>` or `kiln.channel=vsock:<port>`. Without the key, the
 * serial port named AGENT_SERIAL_PORT_NAME is used when present, else vsock AGENT_VSOCK_PORT.
 */
export function parseChannelSpec(value: string | undefined): ChannelSpec | null {
  if (value === undefined) return null;
  const m = /^(serial|vsock):(.+)$/.exec(value);
  if (!m) throw new Error(`kiln.channel must be serial:<name> or vsock:<port>, not "${value}"`);
  if (m[1] === 'serial') return { kind: 'serial', name: m[2] ?? '' };
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 0xffffffff) {
    throw new Error(`kiln.channel has an invalid vsock port "${m[2] ?? ''}"`);
  }
  return { kind: 'vsock', port };
}

/** Opens the channel the kernel command line asks for (see parseChannelSpec). */
export async function openAgentChannel(spec: ChannelSpec | null): Promise<AgentChannel> {
  if (spec?.kind === 'vsock') return openVsockBridgeChannel(spec.port);
  const name = spec?.name ?? AGENT_SERIAL_PORT_NAME;
  // The port appears when virtio_console probes it; give it a moment after boot.
  for (let attempt = 0; attempt < 50; attempt++) {
    const device = await findSerialPort(name);
    if (device) return openSerialPortChannel(device);
    if (spec?.kind === 'serial') await new Promise((r) => setTimeout(r, 100));
    else break;
  }
  if (spec === null) return openVsockBridgeChannel(AGENT_VSOCK_PORT);
  throw new Error(`no virtio-serial port named ${name}`);
}
