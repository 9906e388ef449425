import { open, readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { FloorHttpServer } from './floor-http-server.js';
import { allocateChunkPair, sendFileChunks } from './send-file-chunks.js';

/**
 * The floor of a pull in plain Node on this machine: a bare node:http server that answers the
 * requests of a pull (`/v2/`, the manifest of an OCI layout's only image by any reference, its
 * blobs by digest) with no auth, no database and no routing beyond two patterns. Blobs are read
 * into two 2 MiB buffers (the next chunk while the last is written) and written straight to
 * the socket, as Kiln does. What a client's pull from it costs over its copy from the layout
 * itself is what Node and the HTTP exchanges cost; Kiln's own part is what it adds on top.
 */
export class RegistryFloorServer {
  private readonly server = new FloorHttpServer((req, res) =>
    this.answer(req.method ?? 'GET', req.url ?? '/', res),
  );
  /** Buffer pairs not in use (one pair per download in flight). */
  private readonly free: [Buffer, Buffer][] = [];

  constructor(private readonly layout: string) {}

  /** Listens on 127.0.0.1 and returns `host:port`. */
  async listen(): Promise<string> {
    return `127.0.0.1:${await this.server.listen()}`;
  }

  async close(): Promise<void> {
    await this.server.close();
  }

  private async answer(method: string, url: string, res: ServerResponse): Promise<void> {
    if (url === '/v2/' || url === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '2' });
      res.end('{}');
      return;
    }
    if (/^\/v2\/.+\/manifests\/[^/]+$/.test(url)) {
      const index = JSON.parse(await readFile(path.join(this.layout, 'index.json'), 'utf8')) as {
        manifests: { mediaType: string; digest: string }[];
      };
      const entry = index.manifests[0];
      if (entry === undefined) throw new Error('the layout has no image');
      const body = await readFile(this.blobFile(entry.digest));
      res.writeHead(200, {
        'Content-Type': entry.mediaType,
        'Docker-Content-Digest': entry.digest,
        'Content-Length': String(body.length),
      });
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }
    const blob = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url);
    if (blob?.[1] === undefined) {
      res.writeHead(404, { 'Content-Length': '0' });
      res.end();
      return;
    }
    await this.sendBlob(method, blob[1], res);
  }

  private blobFile(digest: string): string {
    return path.join(this.layout, 'blobs', 'sha256', digest.replace('sha256:', ''));
  }

  private async sendBlob(method: string, digest: string, res: ServerResponse): Promise<void> {
    const handle = await open(this.blobFile(digest), 'r');
    try {
      const { size } = await handle.stat();
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(size),
        'Docker-Content-Digest': digest,
      });
      if (method === 'HEAD' || size === 0) {
        res.end();
        return;
      }
      const pair = this.free.pop() ?? allocateChunkPair();
      this.free.push(await sendFileChunks(handle, size, res, pair));
      res.end();
    } finally {
      await handle.close();
    }
  }
}
