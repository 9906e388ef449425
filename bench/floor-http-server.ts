import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The bare node:http server under each floor server of the benches: every request goes to one
 * handler, and a handler that fails destroys its response. It listens on 127.0.0.1 only.
 */
export class FloorHttpServer {
  private readonly server: Server;

  constructor(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>) {
    this.server = createServer((req, res) => {
      handle(req, res).catch(() => {
        res.destroy();
      });
    });
  }

  /** Listens on a free port of 127.0.0.1 and returns the port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => {
      this.server.listen(0, '127.0.0.1', resolve);
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}
