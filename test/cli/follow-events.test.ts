import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EventRenderer } from '../../src/cli/event-renderer.js';
import { followEvents, type StreamedEvent } from '../../src/cli/follow-events.js';
import { KilnClient } from '../../src/cli/kiln-client.js';

function sse(id: number, event: string, data: Record<string, unknown>): string {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const log = (id: number, data: string) => sse(id, 'log', { stream: 'stdout', data, at: at(id) });

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => {
    if (!server) resolve();
    else {
      server.closeAllConnections();
      server.close(() => {
        resolve();
      });
    }
  });
  server = undefined;
});

/**
 * A loopback HTTP server scripted per connection; it plays the daemon's event route the way
 * a flaky network would (the real route is exercised in cli-daemon.test.ts).
 */
async function scripted(
  handlers: ((req: IncomingMessage, res: ServerResponse) => void)[],
): Promise<{ url: string; lastEventIds: (string | undefined)[] }> {
  const lastEventIds: (string | undefined)[] = [];
  let n = 0;
  server = createServer((req, res) => {
    if (req.url?.startsWith('/builds/b1/events')) {
      lastEventIds.push(req.headers['last-event-id'] as string | undefined);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const handler = handlers[n++];
      if (handler) handler(req, res);
      else res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'b1', status: 'building' }));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, lastEventIds };
}

describe('following build events across dropped connections', () => {
  it('resumes after the last whole event: no line lost, none repeated', async () => {
    const { url, lastEventIds } = await scripted([
      (_req, res) => {
        res.write(log(1, 'one\n') + log(2, 'two\n'));
        // Event 3 cut in half, then the connection dies.
        res.write('id: 3\nevent: log\ndata: {"stream":"stdout","da');
        setImmediate(() => res.socket?.destroy());
      },
      (_req, res) => {
        // A stream that ends cleanly but early; 2 again is dropped as already seen.
        res.end(log(2, 'two\n') + log(3, 'three\n') + log(4, 'fo'));
      },
      (_req, res) => {
        res.write(': keep-alive\n\nevent: heartbeat\ndata: {}\n\n');
        res.end(
          log(5, 'ur\n') +
            sse(6, 'result', {
              status: 'ready',
              at: at(6),
              result: { imageRef: 'h/acme/web:b1', imageDigest: 'sha256:ab' },
              failure: null,
            }),
        );
      },
    ]);
    const seen: StreamedEvent[] = [];
    const reconnects: number[] = [];
    const lines: string[] = [];
    const renderer = new EventRenderer((t) => lines.push(t));
    const result = await followEvents({
      client: new KilnClient({ url, token: 't' }),
      buildId: 'b1',
      signal: new AbortController().signal,
      sleep: () => Promise.resolve(),
      onReconnect: (id) => reconnects.push(id),
      onEvent: (e) => {
        seen.push(e);
        renderer.render(e);
      },
    });
    expect(result).toEqual({ lastEventId: 6, finished: true });
    expect(seen.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lastEventIds).toEqual([undefined, '2', '4']);
    expect(reconnects).toEqual([2, 4]);
    expect(lines.join('')).toBe(
      '   one\n   two\n   three\n   four\n=> ready\nimage  h/acme/web:b1\ndigest sha256:ab\n',
    );
  });

  it('gives up with exit 3 after repeated failures, naming the command to follow again', async () => {
    const { url } = await scripted([]);
    const failure = followEvents({
      client: new KilnClient({ url, token: 't' }),
      buildId: 'b1',
      signal: new AbortController().signal,
      sleep: () => Promise.resolve(),
      maxFailures: 2,
      onEvent: () => undefined,
    });
    await expect(failure).rejects.toMatchObject({ exitCode: 3 });
    await expect(failure).rejects.toThrow('kiln logs b1 -f');
  });
});

describe('rendering build events', () => {
  it('shows steps with the time the previous one took, engine lines indented, the failure code', () => {
    const lines: string[] = [];
    const r = new EventRenderer((t) => lines.push(t));
    const ev = (id: number, type: string, data: Record<string, unknown>) => {
      r.render({ id, type, data: { at: at(id * 2), ...data } });
    };
    ev(1, 'status', { status: 'queued' });
    ev(2, 'status', { status: 'booting' });
    ev(3, 'status', { status: 'building' });
    ev(4, 'phase', { phase: 'extracting' });
    ev(5, 'log', { stream: 'stderr', data: 'STEP 1/2: FROM busybox\r\nSTEP 2/2: RUN false' });
    ev(6, 'log', { stream: 'stdout', data: 'x', truncated: true });
    ev(7, 'status', { status: 'failed' });
    ev(8, 'result', {
      status: 'failed',
      result: null,
      failure: { code: 'build_failed', message: 'RUN false exited 1', logTail: [] },
    });
    expect(lines.join('')).toBe(
      [
        '=> queued',
        '=> booting the build VM (queued took 2.0s)',
        '=> building (booting the build VM took 2.0s)',
        '=> unpacking the source (building took 2.0s)',
        '   STEP 1/2: FROM busybox',
        // The marker ends the stored log: what any stream held back is shown before it.
        '   STEP 2/2: RUN false',
        '   x',
        '   … the daemon stopped storing log output here (log size limit)',
        '=> failed (unpacking the source took 8.0s): RUN false exited 1 (build_failed)',
        '',
      ].join('\n'),
    );
    expect(r.logLines).toBe(3);
  });
});
