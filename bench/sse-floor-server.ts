import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { emitLogChunks, type StandInLogs } from './build-runner-stand-in.js';

/**
 * The floor of the event fan-out benchmark, measured in the same run: a bare node:http server
 * on 127.0.0.1 that sends the same log chunks on the same schedule as SSE frames of the same
 * shape to every follower, each frame encoded once and written to every response, with no
 * store, no routing and no auth. What the machine can do, to read Kiln's figures against.
 */
export class SseFloorServer {
  private readonly responses = new Set<ServerResponse>();
  private readonly server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    this.responses.add(res);
    req.once('close', () => this.responses.delete(res));
  });

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Sends the chunks of `logs` to every connected follower, then a result, and ends them. */
  async run(logs: StandInLogs): Promise<void> {
    let id = 0;
    const send = (type: string, data: string) => {
      id += 1;
      const frame = Buffer.from(`event: ${type}\ndata: ${data}\nid: ${id}\n\n`, 'utf8');
      for (const res of this.responses) res.write(frame);
    };
    await emitLogChunks(
      logs,
      (data, at) => {
        send(
          'log',
          JSON.stringify({
            build_id: 'floor',
            at: at.toISOString(),
            stream: 'stdout',
            data,
            at_guest: at,
          }),
        );
      },
      new AbortController().signal,
    );
    send('result', JSON.stringify({ build_id: 'floor', status: 'ready' }));
    for (const res of this.responses) res.end();
  }

  get connected(): number {
    return this.responses.size;
  }

  async close(): Promise<void> {
    for (const res of this.responses) res.destroy();
    await new Promise<void>((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
  }
}
