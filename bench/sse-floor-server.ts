import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { emitLogChunks, type StandInLogs } from './build-runner-stand-in.js';

/** Bytes per write at most, as Kiln's followers write (src/http/build-event-routes.ts). */
const WRITE_BYTES = 256 * 1024;

interface Follower {
  res: ServerResponse;
  /** Index of the next frame to write. */
  next: number;
  waiting: boolean;
}

/**
 * The floor of the event fan-out benchmark, measured in the same run: a bare node:http server
 * on 127.0.0.1 that sends the same log chunks on the same schedule as SSE frames of the same
 * shape to every follower, with no store, no routing and no auth. Each frame is encoded once
 * and kept; once per turn of the event loop each follower writes from its own cursor (the
 * frames due, up to 256 KiB corked into one `writev`) until its socket pushes back and goes
 * on at `drain` — the least a server must do to deliver everything, in order, to everyone.
 */
export class SseFloorServer {
  private readonly followers = new Set<Follower>();
  private readonly frames: Buffer[] = [];
  private ended = false;
  private pumpScheduled = false;
  private readonly server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const follower: Follower = { res, next: 0, waiting: false };
    this.followers.add(follower);
    res.on('drain', () => {
      follower.waiting = false;
      this.pump(follower);
    });
    req.once('close', () => this.followers.delete(follower));
  });

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Sends the chunks of `logs` to every connected follower, then a result, and ends them. */
  async run(logs: StandInLogs): Promise<void> {
    const send = (type: string, data: string) => {
      const id = this.frames.length + 1;
      this.frames.push(Buffer.from(`event: ${type}\ndata: ${data}\nid: ${id}\n\n`, 'utf8'));
      if (this.pumpScheduled) return;
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        for (const f of this.followers) this.pump(f);
      });
    };
    await emitLogChunks(
      logs,
      (data, at) => {
        send(
          'log',
          JSON.stringify({ build_id: 'floor', at: at.toISOString(), stream: 'stdout', data }),
        );
      },
      new AbortController().signal,
    );
    this.ended = true;
    send('result', JSON.stringify({ build_id: 'floor', status: 'ready' }));
  }

  private pump(f: Follower): void {
    // What is due in writes of up to WRITE_BYTES, each corked into one writev, as Kiln does.
    while (!f.waiting && f.next < this.frames.length) {
      f.res.cork();
      let ok = true;
      for (let bytes = 0; bytes < WRITE_BYTES && f.next < this.frames.length; f.next++) {
        const frame = this.frames[f.next];
        if (frame === undefined) break;
        ok = f.res.write(frame);
        bytes += frame.length;
      }
      f.res.uncork();
      if (!ok) f.waiting = true;
    }
    if (this.ended && f.next === this.frames.length && !f.res.writableEnded) f.res.end();
  }

  async close(): Promise<void> {
    for (const f of this.followers) f.res.destroy();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}
