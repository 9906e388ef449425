import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentChannel } from './agent-channel.js';

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
 * Opens a virtio-serial port (QEMU) as the agent channel. A port accepts one open at a time,
 * so one read-write descriptor backs both directions.
 */
export async function openSerialPortChannel(devicePath: string): Promise<AgentChannel> {
  const handle = await open(devicePath, 'r+');
  const fd = handle.fd;
  const input = createReadStream('', { fd, autoClose: false, highWaterMark: 64 * 1024 });
  const output = createWriteStream('', { fd, autoClose: false });
  let closed = false;
  return {
    input,
    output,
    close() {
      if (closed) return;
      closed = true;
      input.destroy();
      output.end(() => {
        void handle.close();
      });
    },
  };
}
