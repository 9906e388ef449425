import { open } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const CHUNK_BYTES = 2 * 1024 * 1024;

/**
 * The floor of a blob GET in plain Node on this machine: a bare node:http server that answers
 * every GET with one file, read into two buffers allocated once for the server (the next chunk
 * read while the last is written) and written straight to the socket. No routing, no auth, no
 * database: what is left is Node's own cost of moving the bytes (Node has no sendfile), so a
 * registry served by Node cannot do a raw GET faster than this. One download at a time (the
 * benchmark's GETs are sequential): the buffers are the server's.
 */
export class BlobFloorServer {
  private readonly server: Server;
  private buffers: [Buffer, Buffer] = [
    Buffer.allocUnsafeSlow(CHUNK_BYTES),
    Buffer.allocUnsafeSlow(CHUNK_BYTES),
  ];

  constructor(private readonly file: string) {
    this.server = createServer((req, res) => {
      this.send(res).catch(() => {
        res.destroy();
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => {
      this.server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/blob`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  private async send(res: ServerResponse): Promise<void> {
    const handle = await open(this.file, 'r');
    try {
      const { size } = await handle.stat();
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(size),
      });
      let [current, spare] = this.buffers;
      let done = 0;
      let reading = handle.read(current, 0, Math.min(CHUNK_BYTES, size), 0);
      while (done < size) {
        const { bytesRead } = await reading;
        if (bytesRead === 0) throw new Error('file ended early');
        done += bytesRead;
        reading = handle.read(spare, 0, Math.min(CHUNK_BYTES, Math.max(0, size - done)), done);
        await new Promise<void>((resolve, reject) => {
          res.write(current.subarray(0, bytesRead), (err) => {
            if (err) reject(err);
            else resolve();
          });
        });
        [current, spare] = [spare, current];
      }
      await reading;
      this.buffers = [current, spare];
      res.end();
    } finally {
      await handle.close();
    }
  }
}
