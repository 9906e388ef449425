import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FlushingFileWriter } from '../src/storage/flushing-file-writer.js';
import { syncPath } from '../src/storage/sync-path.js';

/**
 * The floor of an upload in plain Node on this machine: a bare node:http server that writes
 * each POST body as it comes (the multipart bytes unparsed) into a new file through the writer
 * the daemon uses (the same 1 MiB buffer, a background fdatasync every 16 MiB, the fsync
 * before it answers), syncs the directory and answers 202. No multipart parsing, no hash, no
 * tar walk, no auth or database: what is left is Node's own cost of receiving the bytes and
 * making them durable, so a daemon in Node cannot accept an upload faster than this.
 */
export class UploadFloorServer {
  private readonly server: Server;
  private count = 0;

  constructor(private readonly dir: string) {
    this.server = createServer((req, res) => {
      this.receive(req, res).catch(() => {
        res.destroy();
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => {
      this.server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/builds`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const file = path.join(this.dir, `floor-upload-${this.count++}`);
    await pipeline(
      req,
      new FlushingFileWriter({
        file,
        flags: 'wx',
        flushEveryBytes: 16 * 1024 * 1024,
        highWaterMark: 1024 * 1024,
        syncOnFinish: true,
      }),
    );
    await syncPath(this.dir);
    res.writeHead(202, { 'Content-Length': '0' });
    res.end();
  }
}
