import http from 'node:http';

/** What the server answered to an oversized body, and how much of it the client got to send. */
export interface OversizedAnswer {
  status: number;
  body: string;
  /** Body bytes the client had written when the answer arrived. */
  sent: number;
}

/**
 * Sends `bytes` of body (one reused buffer, so the client's memory stays flat) to `url` and
 * resolves with the first answer. `framing: 'length'` announces `Content-Length: bytes` and
 * sends no body byte at all, so only a server that refuses on the header can answer;
 * `'chunked'` sends no length (Transfer-Encoding: chunked) and writes until the answer arrives
 * or the server closes the connection.
 */
export function sendOversized(
  url: string,
  options: {
    method: string;
    headers?: Record<string, string>;
    bytes: number;
    framing: 'length' | 'chunked';
    /** First bytes of the body (a multipart preamble); the rest is filler. */
    prefix?: Buffer;
  },
): Promise<OversizedAnswer> {
  const block = Buffer.alloc(256 * 1024, 0x61);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const headers: Record<string, string> = { ...options.headers };
    if (options.framing === 'length') headers['content-length'] = String(options.bytes);
    const req = http.request(url, { method: options.method, headers }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), sent });
        req.destroy();
      });
      res.on('error', reject);
    });
    // The server may close the connection right after answering; only a close before any
    // answer is a failure.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    if (options.framing === 'length') {
      req.flushHeaders();
      return;
    }
    if (options.prefix !== undefined) {
      req.write(options.prefix);
      sent += options.prefix.length;
    }
    const pump = (): void => {
      while (!answered && !req.destroyed && sent < options.bytes) {
        const n = Math.min(block.length, options.bytes - sent);
        sent += n;
        if (!req.write(n === block.length ? block : block.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered && !req.destroyed && sent >= options.bytes) req.end();
    };
    pump();
  });
}
