import { unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { VmError } from '../vm-error.js';

/** sun_path is 108 bytes on Linux, NUL included. */
const MAX_UNIX_SOCKET_PATH_BYTES = 107;

/**
 * The Unix socket path on which the host accepts guest-initiated vsock connections to `port`
 * under Cloud Hypervisor's hybrid vsock (docs/vsock.md: a guest connect to CID 2 port P
 * becomes a connection to `<vsock socket>_P`).
 */
function hybridVsockPath(vsockSocket: string, port: number): string {
  return `${vsockSocket}_${port}`;
}

/** Throws VMM_START_FAILED when `path` cannot be bound as a Unix socket. */
export function assertUnixSocketPath(path: string): void {
  if (Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new VmError(
      'VMM_START_FAILED',
      `Unix socket path is ${Buffer.byteLength(path)} bytes, over the ${MAX_UNIX_SOCKET_PATH_BYTES}-byte limit: ${path}`,
    );
  }
}

/**
 * A listener on `<vsock socket>_<port>`, bound before the VM boots so that the guest never
 * races the host. `close()` stops accepting, destroys every accepted connection and removes
 * the socket file; it is safe to call twice.
 */
export class HybridVsockListener {
  readonly path: string;
  private readonly server: Server;
  private readonly connections = new Set<Socket>();
  private closed = false;

  private constructor(path: string, server: Server) {
    this.path = path;
    this.server = server;
  }

  static async listen(
    vsockSocket: string,
    port: number,
    onConnection: (socket: Socket) => void,
    options: { allowHalfOpen?: boolean } = {},
  ): Promise<HybridVsockListener> {
    const path = hybridVsockPath(vsockSocket, port);
    assertUnixSocketPath(path);
    // A stale file from a crashed run would make listen() fail with EADDRINUSE.
    await unlink(path).catch(() => undefined);
    const server = createServer({ allowHalfOpen: options.allowHalfOpen ?? false });
    const listener = new HybridVsockListener(path, server);
    server.on('connection', (socket) => {
      if (listener.closed) {
        socket.destroy();
        return;
      }
      listener.connections.add(socket);
      socket.on('close', () => listener.connections.delete(socket));
      onConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined);
    return listener;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
    await new Promise<void>((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
    await unlink(this.path).catch(() => undefined);
  }
}
