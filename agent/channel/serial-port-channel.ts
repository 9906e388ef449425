import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentChannel } from './agent-channel.js';
import { openSocatBridge } from './socat-bridge.js';

/**
 * Finds the virtio-serial port called `name` (`/sys/class/virtio-ports/vportNpM/name`) and
 * returns its device path (`/dev/vportNpM`), or null when there is none.
 */
export async function findSerialPort(
  name: string,
  sysRoot = '/sys/class/virtio-ports',
  devRoot = '/dev',
): Promise<string | null> {
  let ports: string[];
  try {
    ports = await readdir(sysRoot);
  } catch {
    return null;
  }
  for (const port of ports.sort()) {
    try {
      const portName = (await readFile(path.join(sysRoot, port, 'name'), 'utf8')).trim();
      if (portName === name) return path.join(devRoot, port);
    } catch {
      // a port without a name attribute is not ours
    }
  }
  return null;
}

/**
 * Opens a virtio-serial port (QEMU) as the agent channel, through socat: the port is a
 * character device Node cannot poll (see openSocatBridge). `GOPEN` opens it read-write once;
 * a port accepts one open at a time.
 */
export function openSerialPortChannel(devicePath: string, socatPath = 'socat'): AgentChannel {
  return openSocatBridge(`GOPEN:${devicePath}`, socatPath);
}
