import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FloorHttpServer } from './floor-http-server.js';
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
  private readonly server = new FloorHttpServer((req, res) => this.receive(req, res));
  private count = 0;

  constructor(private readonly dir: string) {}

  async listen(): Promise<string> {
    return `http://127.0.0.1:${await this.server.listen()}/builds`;
  }

  async close(): Promise<void> {
    await this.server.close();
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
