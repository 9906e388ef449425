import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small HTTP proxy in front of a test upstream registry: it counts blob downloads per
 * digest and, for digests in `corrupt`, flips one byte of the blob it passes on — the test
 * double of an upstream (or a path to it) that serves bad bytes. For digests in `stall` it
 * passes on the headers and the first chunk, then nothing more (an upstream that hangs).
 */
export class UpstreamProxy {
  /** Blob downloads the upstream answered 200, per digest. */
  readonly blobGets = new Map<string, number>();
  readonly corrupt = new Set<string>();
  readonly stall = new Set<string>();
  /**
   * When set, blob GETs are answered `307` to `<redirectBlobs>/<digest>` (another origin, as
   * Docker Hub sends blobs to its CDN); `blobAuthorization` records what each one carried.
   */
  redirectBlobs: string | null = null;
  readonly blobAuthorization: (string | undefined)[] = [];
  readonly #server: Server;
  readonly #target: URL;
  port = 0;

  private constructor(target: string) {
    this.#target = new URL(target);
    this.#server = createServer((req, res) => {
      const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '')?.[1];
      if (digest !== undefined && req.method === 'GET' && this.redirectBlobs !== null) {
        this.blobAuthorization.push(req.headers.authorization);
        res.writeHead(307, { location: `${this.redirectBlobs}/${digest}` });
        res.end();
        return;
      }
      const upstream = request(
        {
          host: this.#target.hostname,
          port: this.#target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: this.#target.host },
        },
        (up) => {
          if (digest !== undefined && req.method === 'GET' && up.statusCode === 200) {
            this.blobGets.set(digest, (this.blobGets.get(digest) ?? 0) + 1);
          }
          res.writeHead(up.statusCode ?? 502, up.headers);
          let flipped = digest === undefined || !this.corrupt.has(digest) || up.statusCode !== 200;
          const stalls = digest !== undefined && this.stall.has(digest) && up.statusCode === 200;
          up.on('data', (chunk: Buffer) => {
            if (!flipped && chunk.length > 0) {
              chunk[0] = (chunk[0] ?? 0) ^ 0xff;
              flipped = true;
            }
            res.write(chunk);
            if (stalls) up.pause();
          });
          up.on('end', () => res.end());
          up.on('error', () => res.destroy());
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
  }

  static async start(target: string): Promise<UpstreamProxy> {
    const proxy = new UpstreamProxy(target);
    await proxy.listen(0);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.listen(port, '127.0.0.1', () => {
        resolve();
      });
    });
    this.port = (this.#server.address() as AddressInfo).port;
  }

  /** Stops listening and drops open connections (the upstream "goes away"). */
  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
      this.#server.closeAllConnections();
    });
  }
}
