import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectVia, exchange, getVia, type ProxyAddress } from './proxy-client.js';
import { createAddressClassifier } from '../../src/egress/address-classifier.js';
import type { EgressDenial } from '../../src/egress/egress-denial.js';
import { EgressPolicy } from '../../src/egress/egress-policy.js';
import { EgressProxy, type EgressProxyOptions } from '../../src/egress/egress-proxy.js';
import type { EgressResolver, ResolvedAddress } from '../../src/egress/egress-resolver.js';
import { hostAddresses } from '../../src/egress/host-addresses.js';
import { HostAllowlist } from '../../src/egress/host-allowlist.js';
import { freePort } from '../helpers/free-port.js';
import { LoopbackOnlyConnector } from '../helpers/loopback-only-connector.js';
import { ManualClock } from '../helpers/manual-clock.js';

/** A public address standing in for the host's own (never connected to: the guard refuses). */
const HOST_PUBLIC_ADDRESS = '8.8.4.4';
/** The host's addresses: the real interfaces, plus a public one so the case never runs empty. */
const HOST_TABLE = { ...networkInterfaces(), wan0: [{ address: HOST_PUBLIC_ADDRESS }] };
const HOST_NON_LOOPBACK = Object.values(HOST_TABLE)
  .flat()
  .map((entry) => entry.address)
  .filter((a) => a !== '127.0.0.1' && a !== '::1');

/** Test DNS: names to fixed answers, counting lookups. Unknown names fail like ENOTFOUND. */
class MapResolver {
  readonly lookups: string[] = [];
  constructor(private readonly table: Record<string, readonly string[]>) {}
  readonly resolve: EgressResolver = (name) => {
    this.lookups.push(name);
    const found = this.table[name];
    if (found === undefined) return Promise.reject(new Error(`ENOTFOUND ${name}`));
    return Promise.resolve(
      found.map((address): ResolvedAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  };
}

interface Harness {
  proxy: EgressProxy;
  at: ProxyAddress;
  guard: LoopbackOnlyConnector;
  dns: MapResolver;
  time: ManualClock;
  denials: EgressDenial[];
}

let origin: Server;
let originPort: number;
let echo: ReturnType<typeof createNetServer>;
let echoPort: number;
let deadPort: number;
let silent: ReturnType<typeof createNetServer>;
let silentPort: number;
const proxies: EgressProxy[] = [];
const guards: LoopbackOnlyConnector[] = [];
const cleanups: (() => Promise<void>)[] = [];

/** The origin answers with what it received, so a test sees what the proxy forwarded. */
function startOrigin(): Promise<void> {
  origin = createHttpServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-origin', 'yes');
      res.setHeader('keep-alive', 'timeout=99');
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
  });
  return new Promise((resolve) => {
    origin.listen(0, '127.0.0.1', () => {
      originPort = (origin.address() as AddressInfo).port;
      resolve();
    });
  });
}

/** A TCP service that answers each chunk upper-cased: bytes through a tunnel, both ways. */
function startEcho(): Promise<void> {
  echo = createNetServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (c: Buffer) => socket.write(c.toString().toUpperCase()));
    socket.on('end', () => socket.end('BYE'));
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve) => {
    echo.listen(0, '127.0.0.1', () => {
      echoPort = (echo.address() as AddressInfo).port;
      resolve();
    });
  });
}

async function startProxy(
  options: {
    hosts?: string[];
    maxConnections?: number;
    idleTimeoutMs?: number;
    dns?: Record<string, readonly string[]>;
    listen?: 'tcp' | 'unix';
  } = {},
): Promise<Harness> {
  const parsed = HostAllowlist.parse(options.hosts ?? ['*']);
  if (parsed.allowlist === undefined) throw new Error('invalid test allowlist');
  const time = new ManualClock();
  const guard = new LoopbackOnlyConnector();
  guards.push(guard);
  const dns = new MapResolver({
    'metadata.test': ['169.254.169.254'],
    'redis.test': ['10.0.0.5'],
    'router.test': ['192.168.1.1'],
    'self.test': HOST_NON_LOOPBACK,
    'loopback.test': ['127.0.0.1'],
    'mapped-loopback.test': ['::ffff:127.0.0.1'],
    'mixed.test': ['10.0.0.5', '169.254.169.254', 'fd00::1'],
    'public.test': ['93.184.216.34'],
    'mirror.test': ['::ffff:127.0.0.1'],
    ...options.dns,
  });
  const denials: EgressDenial[] = [];
  const policy = new EgressPolicy({
    allowedPorts: [80, 443],
    exceptions: [
      { host: '127.0.0.1', port: originPort },
      { host: '127.0.0.1', port: echoPort },
      { host: '127.0.0.1', port: deadPort },
      { host: '127.0.0.1', port: silentPort },
      { host: 'mirror.test', port: originPort },
    ],
    allowlist: parsed.allowlist,
    classifyAddress: createAddressClassifier({ hostAddresses: hostAddresses(HOST_TABLE) }),
  });
  const proxyOptions: EgressProxyOptions = {
    policy,
    maxConnections: options.maxConnections ?? 8,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    resolve: dns.resolve,
    connect: guard.connect,
    clock: time,
    scheduler: time,
    logger: pino({ level: 'silent' }),
    onDenied: (d) => denials.push(d),
  };
  const proxy = new EgressProxy(proxyOptions);
  proxies.push(proxy);
  let at: ProxyAddress;
  if (options.listen === 'unix') {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-egress-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'egress.sock');
    expect(await proxy.listen({ path: socketPath })).toBe(socketPath);
    at = { socketPath };
  } else {
    const address = await proxy.listen({ host: '127.0.0.1', port: 0 });
    at = { port: (address as AddressInfo).port };
  }
  return { proxy, at, guard, dns, time, denials };
}

/** A TCP service that reads and never answers. */
function startSilent(): Promise<void> {
  silent = createNetServer((socket) => {
    socket.resume();
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve) => {
    silent.listen(0, '127.0.0.1', () => {
      silentPort = (silent.address() as AddressInfo).port;
      resolve();
    });
  });
}

beforeEach(async () => {
  await startOrigin();
  await startEcho();
  await startSilent();
  deadPort = await freePort();
});

afterEach(async () => {
  for (const proxy of proxies.splice(0)) await proxy.close();
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await new Promise<void>((resolve) =>
    origin.close(() => {
      resolve();
    }),
  );
  origin.closeAllConnections();
  await new Promise<void>((resolve) =>
    echo.close(() => {
      resolve();
    }),
  );
  await new Promise<void>((resolve) =>
    silent.close(() => {
      resolve();
    }),
  );
  // The guard: no test may have asked the proxy to reach beyond loopback.
  for (const guard of guards.splice(0)) expect(guard.violations).toEqual([]);
});

describe('EgressProxy: what passes', () => {
  it('tunnels bytes both ways through CONNECT to an operator exception, and counts them', async () => {
    const h = await startProxy();
    const { status, socket } = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    expect(status).toBe(200);
    expect(await exchange(socket, 'hello through the tunnel')).toBe('HELLO THROUGH THE TUNNEL');
    expect(await exchange(socket, 'again')).toBe('AGAIN');
    // Half-close: the client's FIN reaches the service, whose last words come back.
    const rest: Buffer[] = [];
    socket.on('data', (c: Buffer) => rest.push(c));
    socket.end();
    await once(socket, 'close');
    expect(Buffer.concat(rest).toString()).toBe('BYE');
    await waitFor(() => h.proxy.stats().hosts[0]?.bytesIn === 32);
    const stats = h.proxy.stats();
    expect(stats.hosts).toEqual([
      { host: '127.0.0.1', port: echoPort, connections: 1, bytesIn: 32, bytesOut: 29 },
    ]);
    expect(stats.bytesIn).toBe(32);
    expect(stats.bytesOut).toBe(29);
    expect(stats.denied).toEqual([]);
    expect(h.guard.calls).toEqual([{ address: '127.0.0.1', family: 4, port: echoPort }]);
  });

  it('forwards an absolute-form GET with end-to-end headers only, Host set to the target', async () => {
    const h = await startProxy();
    const res = await getVia(h.at, `http://127.0.0.1:${originPort}/pkg/a?x=1`, {
      headers: {
        host: 'somewhere-else.example',
        'x-kept': 'kept',
        'x-dropped': 'dropped',
        connection: 'x-dropped',
        'proxy-authorization': 'Basic c2VjcmV0',
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-origin']).toBe('yes');
    expect(res.headers['keep-alive']).not.toBe('timeout=99');
    const seen = JSON.parse(res.body) as {
      method: string;
      url: string;
      headers: Record<string, string>;
    };
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/pkg/a?x=1');
    expect(seen.headers.host).toBe(`127.0.0.1:${originPort}`);
    expect(seen.headers['x-kept']).toBe('kept');
    expect(seen.headers['x-dropped']).toBeUndefined();
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers.connection).toBe('close');
    const stats = h.proxy.stats();
    expect(stats.hosts).toHaveLength(1);
    expect(stats.hosts[0]).toMatchObject({ host: '127.0.0.1', port: originPort, connections: 1 });
    expect(stats.hosts[0]!.bytesIn).toBeGreaterThan(res.body.length);
    expect(stats.hosts[0]!.bytesOut).toBeGreaterThan(0);
  });

  it('forwards a request body (absolute-form POST)', async () => {
    const h = await startProxy();
    const res = await getVia(h.at, `http://127.0.0.1:${originPort}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'a body for upstream',
    });
    const seen = JSON.parse(res.body) as { method: string; body: string };
    expect(seen).toMatchObject({ method: 'POST', body: 'a body for upstream' });
  });

  it('forwards bytes the client sent right behind its CONNECT, before the answer', async () => {
    const h = await startProxy();
    const raw = connect({ host: '127.0.0.1', port: (h.at as { port: number }).port });
    await once(raw, 'connect');
    const got = await exchange(
      raw,
      `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\n\r\nearly`,
      'HTTP/1.1 200 Connection Established\r\n\r\nEARLY'.length,
    );
    expect(got).toBe('HTTP/1.1 200 Connection Established\r\n\r\nEARLY');
    raw.destroy();
  });

  it('resolves a name once and connects to exactly the (canonical) address it checked', async () => {
    const h = await startProxy();
    const res = await getVia(h.at, `http://mirror.test:${originPort}/`);
    expect(res.status).toBe(200);
    expect(h.dns.lookups).toEqual(['mirror.test']);
    expect(h.guard.calls).toEqual([{ address: '127.0.0.1', family: 4, port: originPort }]);
    expect(h.proxy.stats().hosts.map((s) => s.host)).toEqual(['mirror.test']);
  });

  it('serves a Unix socket for a VMM forward', async () => {
    const h = await startProxy({ listen: 'unix' });
    const { status, socket } = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    expect(status).toBe(200);
    expect(await exchange(socket, 'unix')).toBe('UNIX');
    socket.destroy();
  });

  it('serves a connection accepted elsewhere (as a vsock listener would hand it over)', async () => {
    const h = await startProxy();
    const side = createNetServer((socket) => {
      h.proxy.accept(socket);
    });
    await new Promise<void>((resolve) => side.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise((resolve) =>
          side.close(() => {
            resolve();
          }),
        ),
    );
    const { status, socket } = await connectVia(
      { port: (side.address() as AddressInfo).port },
      `127.0.0.1:${echoPort}`,
    );
    expect(status).toBe(200);
    expect(await exchange(socket, 'vsock')).toBe('VSOCK');
    socket.destroy();
  });
});

describe('EgressProxy: hostile destinations are refused without a connect', () => {
  const cases: [string, string, string][] = [
    ['metadata.test', '169.254.169.254', 'cloud metadata address'],
    ['redis.test', '10.0.0.5', 'private address'],
    ['router.test', '192.168.1.1', 'private address'],
    ['loopback.test', '127.0.0.1', 'loopback address'],
    ['mapped-loopback.test', '::ffff:127.0.0.1', 'loopback address'],
  ];

  it.each(cases)('CONNECT %s (resolving to %s) answers 403: %s', async (name, address, phrase) => {
    const h = await startProxy();
    const res = await connectVia(h.at, `${name}:443`);
    expect(res.status).toBe(403);
    expect(res.body).toBe(`denied ${name}:443 (${address}): ${phrase}`);
    expect(h.guard.calls).toEqual([]);
    expect(h.denials.map((d) => d.message)).toEqual([res.body]);
    expect(h.dns.lookups).toEqual([name]);
  });

  it.each(cases)(
    'GET http://%s/ (resolving to %s) answers 403: %s',
    async (name, address, phrase) => {
      const h = await startProxy();
      const res = await getVia(h.at, `http://${name}/latest/meta-data/`);
      expect(res.status).toBe(403);
      expect(res.body.trim()).toBe(`denied ${name}:80 (${address}): ${phrase}`);
      expect(h.guard.calls).toEqual([]);
    },
  );

  it("refuses names resolving to the host's own non-loopback addresses, public ones too", async () => {
    const h = await startProxy({ dns: { 'public-self.test': [HOST_PUBLIC_ADDRESS] } });
    const res = await connectVia(h.at, 'self.test:443');
    expect(res.status).toBe(403);
    expect(res.body).toMatch(new RegExp(`^denied self\\.test:443 \\(${HOST_NON_LOOPBACK[0]}\\): `));
    const pub = await connectVia(h.at, 'public-self.test:443');
    expect(pub.body).toBe(
      `denied public-self.test:443 (${HOST_PUBLIC_ADDRESS}): address of the build host`,
    );
    const direct = await connectVia(h.at, `${HOST_PUBLIC_ADDRESS}:443`);
    expect(direct.body).toBe(`denied ${HOST_PUBLIC_ADDRESS}:443: address of the build host`);
    expect(h.guard.calls).toEqual([]);
  });

  it('refuses a name when every address it resolves to is refused, naming the first', async () => {
    const h = await startProxy();
    const res = await connectVia(h.at, 'mixed.test:443');
    expect(res.body).toBe('denied mixed.test:443 (10.0.0.5): private address');
    expect(h.guard.calls).toEqual([]);
  });

  it.each([
    ['10.0.0.5:6379', 'denied 10.0.0.5:6379: private address'],
    ['169.254.169.254:80', 'denied 169.254.169.254:80: cloud metadata address'],
    ['0x7f.1:443', 'denied 127.0.0.1:443: loopback address'],
    ['2130706433:443', 'denied 127.0.0.1:443: loopback address'],
    ['127.1:443', 'denied 127.0.0.1:443: loopback address'],
    ['0177.0.0.1:443', 'denied 127.0.0.1:443: loopback address'],
    ['[::ffff:127.0.0.1]:443', 'denied [::ffff:7f00:1]:443: loopback address'],
    ['[::1]:443', 'denied [::1]:443: loopback address'],
    ['[fd00:ec2::254]:80', 'denied [fd00:ec2::254]:80: cloud metadata address'],
  ])('refuses the IP literal CONNECT %s before any lookup', async (authority, message) => {
    const h = await startProxy();
    const res = await connectVia(h.at, authority);
    expect(res.status).toBe(403);
    expect(res.body).toBe(message);
    expect(h.dns.lookups).toEqual([]);
    expect(h.guard.calls).toEqual([]);
  });

  it('refuses odd spellings of loopback in absolute-form too', async () => {
    const h = await startProxy();
    for (const host of ['0x7f.1', '2130706433', '127.1', '0177.0.0.1', '[::ffff:127.0.0.1]']) {
      const res = await getVia(h.at, `http://${host}/`);
      expect(res.status).toBe(403);
      expect(res.body).toContain('loopback address');
    }
    expect(h.guard.calls).toEqual([]);
  });

  it('refuses CONNECT to port 22 of an allowed name, before resolving it', async () => {
    const h = await startProxy();
    const res = await connectVia(h.at, 'public.test:22');
    expect(res.status).toBe(403);
    expect(res.body).toBe('denied public.test:22: port not allowed');
    expect(h.dns.lookups).toEqual([]);
    expect(h.guard.calls).toEqual([]);
  });

  it('refuses absolute-form HTTP to another port of an allowed name', async () => {
    const h = await startProxy();
    const res = await getVia(h.at, 'http://public.test:6379/');
    expect(res.status).toBe(403);
    expect(res.body.trim()).toBe('denied public.test:6379: port not allowed');
    expect(h.guard.calls).toEqual([]);
  });

  it('refuses loopback ports that are not an exact exception', async () => {
    const h = await startProxy();
    for (const port of [443, 4874]) {
      const res = await connectVia(h.at, `127.0.0.1:${port}`);
      expect(res.status).toBe(403);
      expect(res.body).toBe(`denied 127.0.0.1:${port}: loopback address`);
    }
    expect(h.guard.calls).toEqual([]);
  });

  it('refuses a host outside allowed_hosts, before resolving it', async () => {
    const h = await startProxy({ hosts: ['*.allowed.test', '127.0.0.1'] });
    const res = await connectVia(h.at, 'public.test:443');
    expect(res.status).toBe(403);
    expect(res.body).toBe('denied public.test:443: host not in allowed_hosts');
    expect(h.dns.lookups).toEqual([]);
    // The exception stays reachable, because the list names it.
    expect((await connectVia(h.at, `127.0.0.1:${echoPort}`)).status).toBe(200);
  });
});

describe('EgressProxy: malformed requests and failures', () => {
  it('answers 400 to an origin-form request (the proxy is not a web server)', async () => {
    const h = await startProxy();
    const res = await getVia(h.at, '/healthz');
    expect(res.status).toBe(400);
    expect(res.body).toContain('absolute');
  });

  it('answers 400 to https:// in absolute-form and to a CONNECT without a port', async () => {
    const h = await startProxy();
    expect((await getVia(h.at, 'https://public.test/')).status).toBe(400);
    expect((await connectVia(h.at, 'public.test')).status).toBe(400);
    expect((await connectVia(h.at, 'bad!host:443')).status).toBe(400);
    expect(h.proxy.stats().deniedTotal).toBe(0);
  });

  it('answers 400 to an Upgrade request (WebSockets go through CONNECT)', async () => {
    const h = await startProxy();
    const res = await getVia(h.at, `http://127.0.0.1:${originPort}/ws`, {
      headers: { connection: 'Upgrade', upgrade: 'websocket' },
    });
    expect(res.status).toBe(400);
    expect(res.body.trim()).toBe('upgrade is not proxied; use CONNECT');
    expect(h.guard.calls).toEqual([]);
  });

  it('answers 502 when the name does not resolve', async () => {
    const h = await startProxy();
    const res = await connectVia(h.at, 'nowhere.test:443');
    expect(res.status).toBe(502);
    expect(res.body).toBe('cannot resolve nowhere.test');
    expect(h.proxy.stats().failedConnections).toBe(1);
  });

  it('answers 502 when the connect fails', async () => {
    const h = await startProxy();
    const res = await connectVia(h.at, `127.0.0.1:${deadPort}`);
    expect(res.status).toBe(502);
    expect(res.body).toBe(`cannot connect to 127.0.0.1:${deadPort}`);
    const absolute = await getVia(h.at, `http://127.0.0.1:${deadPort}/`);
    expect(absolute.status).toBe(502);
    expect(h.proxy.stats()).toMatchObject({ failedConnections: 2, hosts: [] });
  });
});

describe('EgressProxy: limits', () => {
  it('answers 429 beyond the concurrent connection limit and admits again once one closes', async () => {
    const h = await startProxy({ maxConnections: 2 });
    const a = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    const b = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    expect(c.status).toBe(429);
    expect(c.body).toBe(`denied 127.0.0.1:${echoPort}: too many concurrent connections`);
    expect(h.denials.map((d) => d.reason)).toEqual(['connection_limit']);
    a.socket.destroy();
    await waitFor(() => h.proxy.stats().openConnections < 2);
    const d = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    expect(d.status).toBe(200);
    expect(await exchange(d.socket, 'ok')).toBe('OK');
    b.socket.destroy();
    d.socket.destroy();
  });

  it('closes a tunnel that stays quiet for the idle timeout, and not one that keeps talking', async () => {
    const h = await startProxy({ idleTimeoutMs: 10_000 });
    const { socket } = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    const closed = once(socket, 'close');
    h.time.advance(9_000);
    expect(await exchange(socket, 'still here')).toBe('STILL HERE');
    h.time.advance(9_000);
    expect(socket.destroyed).toBe(false);
    expect(await exchange(socket, 'and here')).toBe('AND HERE');
    h.time.advance(10_000);
    await closed;
    expect(h.proxy.stats().hosts[0]).toMatchObject({ connections: 1, bytesIn: 18, bytesOut: 18 });
  });

  it('closes an absolute-form exchange whose upstream goes quiet, answering 504', async () => {
    const h = await startProxy({ idleTimeoutMs: 5_000 });
    const pending = getVia(h.at, `http://127.0.0.1:${silentPort}/`);
    await waitFor(() => h.proxy.stats().openConnections === 1);
    h.time.advance(4_999);
    expect(h.proxy.stats().openConnections).toBe(1);
    h.time.advance(1);
    const res = await pending;
    expect(res.status).toBe(504);
    expect(res.body.trim()).toBe('upstream went quiet');
    await waitFor(() => h.proxy.stats().openConnections === 0);
  });
});

describe('EgressProxy: stats and lifecycle', () => {
  it('keeps every denial in order with its message and counts the hosts reached', async () => {
    const h = await startProxy();
    await connectVia(h.at, 'redis.test:443');
    await connectVia(h.at, 'public.test:22');
    const ok = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    ok.socket.destroy();
    await getVia(h.at, `http://127.0.0.1:${originPort}/`);
    await getVia(h.at, `http://127.0.0.1:${originPort}/again`);
    const stats = h.proxy.stats();
    expect(stats.deniedTotal).toBe(2);
    expect(stats.denied.map((d) => [d.host, d.port, d.address, d.reason])).toEqual([
      ['redis.test', 443, '10.0.0.5', 'private'],
      ['public.test', 22, undefined, 'port_not_allowed'],
    ]);
    expect(stats.denied[0]!.at).toEqual(h.time.now());
    expect(stats.hosts).toHaveLength(2);
    expect(stats.hosts.map((s) => [s.host, s.port, s.connections])).toEqual(
      expect.arrayContaining([
        ['127.0.0.1', originPort, 2],
        ['127.0.0.1', echoPort, 1],
      ]),
    );
    expect(h.denials).toEqual(stats.denied);
  });

  it('ends open tunnels on close, refuses new connections, and can be closed twice', async () => {
    const h = await startProxy();
    const { socket } = await connectVia(h.at, `127.0.0.1:${echoPort}`);
    const closed = once(socket, 'close');
    await h.proxy.close();
    await closed;
    await h.proxy.close();
    const late = connect({ host: '127.0.0.1', port: (h.at as { port: number }).port });
    const [err] = (await once(late, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
    expect(h.proxy.stats().hosts).toHaveLength(1);
  });

  it('throws at construction on a bad limit', () => {
    const base = {
      policy: new EgressPolicy({
        allowedPorts: [443],
        exceptions: [],
        allowlist: HostAllowlist.ANY,
        classifyAddress: createAddressClassifier({ hostAddresses: [] }),
      }),
      clock: new ManualClock(),
      scheduler: new ManualClock(),
      logger: pino({ level: 'silent' }),
    };
    expect(() => new EgressProxy({ ...base, maxConnections: 0, idleTimeoutMs: 1 })).toThrow(
      TypeError,
    );
    expect(() => new EgressProxy({ ...base, maxConnections: 1, idleTimeoutMs: 0 })).toThrow(
      TypeError,
    );
  });
});

/** Waits until `check` holds, polling on the event loop (no timer margins: the test's own timeout bounds it). */
async function waitFor(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
}
