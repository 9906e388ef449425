import { open } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { FloorHttpServer } from './floor-http-server.js';
import { allocateChunkPair, sendFileChunks } from './send-file-chunks.js';

/**
 * The floor of a blob GET in plain Node on this machine: a bare node:http server that answers
 * every GET with one file, read into two buffers allocated once for the server (the next chunk
 * read while the last is written) and written straight to the socket. No routing, no auth, no
 * database: what is left is Node's own cost of moving the bytes (Node has no sendfile), so a
 * registry served by Node cannot do a raw GET faster than this. One download at a time (the
 * benchmark's GETs are sequential): the buffers are the server's.
 */
export class BlobFloorServer {
  private readonly server = new FloorHttpServer((_req, res) => this.send(res));
  private buffers = allocateChunkPair();

  constructor(private readonly file: string) {}

  async listen(): Promise<string> {
    return `http://127.0.0.1:${await this.server.listen()}/blob`;
  }

  async close(): Promise<void> {
    await this.server.close();
  }

  private async send(res: ServerResponse): Promise<void> {
    const handle = await open(this.file, 'r');
    try {
      const { size } = await handle.stat();
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(size),
      });
      this.buffers = await sendFileChunks(handle, size, res, this.buffers);
      res.end();
    } finally {
      await handle.close();
    }
  }
}
