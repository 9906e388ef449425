import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** Where the test reaches the proxy. */
export type ProxyAddress = { port: number } | { socketPath: string };

function endpoint(proxy: ProxyAddress): { host: string; port: number } | { socketPath: string } {
  return 'port' in proxy ? { host: '127.0.0.1', port: proxy.port } : proxy;
}

/** Sends `CONNECT authority` with Node's HTTP client; resolves with the answer and the socket. */
export async function connectVia(
  proxy: ProxyAddress,
  authority: string,
): Promise<{ status: number; body: string; socket: Socket }> {
  const req = request({ ...endpoint(proxy), method: 'CONNECT', path: authority, agent: false });
  req.end();
  const [res, socket, head] = (await once(req, 'connect')) as [IncomingMessage, Socket, Buffer];
  const status = res.statusCode ?? 0;
  if (status === 200) return { status, body: '', socket };
  // A refusal carries a short text body; Node's client hands the raw socket over with what it
  // read past the header block in `head`, so read the rest to the end.
  const chunks: Buffer[] = [head];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'close');
  const text = Buffer.concat(chunks).toString();
  return { status, body: text.trim(), socket };
}

/** Sends an absolute-form request through the proxy; resolves with status, headers and body. */
export async function getVia(
  proxy: ProxyAddress,
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  const req = request({
    ...endpoint(proxy),
    method: options.method ?? 'GET',
    path: url,
    headers: options.headers,
    agent: false,
  });
  req.end(options.body);
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    body: Buffer.concat(chunks).toString(),
  };
}

/** Writes `data` and resolves with the first `length` bytes read back. */
export async function exchange(
  socket: Socket,
  data: string,
  length = data.length,
): Promise<string> {
  const got: Buffer[] = [];
  let size = 0;
  const done = new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      got.push(c);
      size += c.length;
      if (size >= length) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  socket.write(data);
  await done;
  return Buffer.concat(got).toString();
}
