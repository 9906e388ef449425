import { execFile } from 'node:child_process';
import { VmError } from '../vm-error.js';

/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
export const MAX_INTERFACE_NAME_BYTES = 15;

function run(ipBinary: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(ipBinary, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err === null) {
        resolve();
        return;
      }
      const detail = stderr.trim() === '' ? err.message : stderr.trim();
      reject(new Error(`${ipBinary} ${args.join(' ')}: ${detail}`, { cause: err }));
    });
  });
}

/**
 * Creates a TAP device with the host end of a point-to-point link (`ip tuntap add`, `ip addr
 * add`, `ip link set up`). Needs CAP_NET_ADMIN; any failure is reported as
 * VMM_NETWORK_UNAVAILABLE naming the device and the `ip` error, and a half-created device is
 * removed. A device of the same name left by a crashed daemon is deleted first: the TAP
 * prefix belongs to this daemon alone.
 */
export async function createTapDevice(options: {
  name: string;
  hostIp: string;
  prefixLength: number;
  ipBinary?: string | undefined;
}): Promise<void> {
  const ip = options.ipBinary ?? 'ip';
  if (Buffer.byteLength(options.name) > MAX_INTERFACE_NAME_BYTES) {
    throw new VmError('VMM_NETWORK_UNAVAILABLE', `TAP name "${options.name}" is too long`);
  }
  await deleteTapDevice(options.name, ip).catch(() => undefined);
  try {
    await run(ip, ['tuntap', 'add', 'dev', options.name, 'mode', 'tap']);
  } catch (err) {
    throw new VmError(
      'VMM_NETWORK_UNAVAILABLE',
      `cannot create TAP device ${options.name} for egress networking (needs CAP_NET_ADMIN): ${(err as Error).message}`,
      { cause: err },
    );
  }
  try {
    await run(ip, [
      'addr',
      'add',
      `${options.hostIp}/${options.prefixLength}`,
      'dev',
      options.name,
    ]);
    await run(ip, ['link', 'set', 'dev', options.name, 'up']);
  } catch (err) {
    await deleteTapDevice(options.name, ip).catch(() => undefined);
    throw new VmError(
      'VMM_NETWORK_UNAVAILABLE',
      `cannot configure TAP device ${options.name}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Removes a TAP device (`ip link delete`). */
export async function deleteTapDevice(name: string, ipBinary = 'ip'): Promise<void> {
  await run(ipBinary, ['link', 'delete', 'dev', name]);
}
