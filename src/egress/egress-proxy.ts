import {
  createServer,
  request as httpRequest,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { systemConnector, type EgressConnector } from './egress-connector.js';
import { describeDenial, type DenialReason, type EgressDenial } from './egress-denial.js';
import type { EgressPolicy } from './egress-policy.js';
import { systemResolver, type EgressResolver, type ResolvedAddress } from './egress-resolver.js';
import { EgressStats, type EgressReport } from './egress-stats.js';
import { endToEndHeaders, forwardedRequestHeaders } from './forwarded-headers.js';
import { IdleWatch } from './idle-watch.js';
import { formatHostPort } from './normalize-host.js';
import { parseAbsoluteTarget, parseConnectTarget, type ProxyTarget } from './proxy-target.js';
import type { Clock } from '../../common/time/clock.js';
import type { Scheduler } from '../time/scheduler.js';

/** Options of {@link EgressProxy}: one build's proxy. */
export interface EgressProxyOptions {
  /** This build's rules (allowlist, ports, exceptions, address policy). */
  readonly policy: EgressPolicy;
  /** Upstream connections open (or being opened) at once; more are answered 429. */
  readonly maxConnections: number;
  /** An upstream connection (or a lookup and connect) quiet for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Name resolution; default `dns.lookup` with `all: true`. */
  readonly resolve?: EgressResolver;
  /** Outbound TCP; default `net.connect` to the checked address. */
  readonly connect?: EgressConnector;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly logger: Logger;
  /**
   * Called for each refused attempt (the first MAX_DENIALS_KEPT), with the message to show
   * the user, e.g. `denied 10.0.0.5:6379: private address`.
   */
  readonly onDenied?: (denial: EgressDenial) => void;
}

/** Where the proxy listens: a Unix socket (for a VMM forward) or a TCP address. */
export type EgressListenTarget =
  { readonly path: string } | { readonly host: string; readonly port: number };

/** How an attempt to open an upstream connection ended. */
type Opened =
  | { readonly socket: Socket; readonly status?: never; readonly reason?: never }
  | { readonly socket?: never; readonly status: number; readonly reason: string };

/**
 * The filtering HTTP forward proxy of one build (RFC 9110 §9.3.6 CONNECT for TLS, RFC 9112
 * §3.2.2 absolute-form for plain HTTP). Node's HTTP server parses both forms (llhttp); nothing
 * here parses HTTP by hand. Every target is judged on the host: the allowlist and port first,
 * then each address DNS returns, and the connection goes to exactly an address that passed —
 * no second lookup, so a name that re-resolves elsewhere (DNS rebinding) gains nothing.
 *
 * Answers: 400 for a malformed request, 403 with a short reason for a refusal, 429 over the
 * connection limit, 502 when a lookup or connect fails, 504 when it goes quiet for the idle
 * timeout. Each refusal is kept in the stats and passed to `onDenied`.
 *
 * Reachable two ways, so a VM driver can use whichever its forward gives: `listen({ path })`
 * for a Unix socket (QEMU `guestfwd` running `socat - UNIX-CONNECT:<path>`) or a TCP address,
 * and `accept(socket)` for a connection accepted elsewhere (a Cloud Hypervisor vsock port).
 */
export class EgressProxy {
  private readonly server: Server;
  private readonly resolve: EgressResolver;
  private readonly connect: EgressConnector;
  private readonly statsCounter = new EgressStats();
  private readonly clients = new Set<Socket>();
  private readonly upstreams = new Set<Socket>();
  private readonly watches = new Set<IdleWatch>();
  /** Upstream connections admitted and not yet closed (lookups and connects included). */
  private active = 0;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: EgressProxyOptions) {
    if (!Number.isInteger(options.maxConnections) || options.maxConnections < 1) {
      throw new TypeError('maxConnections must be a positive integer');
    }
    if (!(options.idleTimeoutMs > 0)) throw new TypeError('idleTimeoutMs must be positive');
    this.resolve = options.resolve ?? systemResolver;
    this.connect = options.connect ?? systemConnector;
    // requestTimeout 0: a long upload through absolute-form is bounded by the idle watch,
    // not cut at Node's default five minutes. headersTimeout and keepAliveTimeout stay.
    this.server = createServer({ requestTimeout: 0 });
    // A client keeps idle keep-alive sockets besides its busy ones; twice the upstream limit
    // leaves room for them while a build still cannot hold sockets without bound.
    const maxClients = options.maxConnections * 2;
    this.server.on('connection', (socket: Socket) => {
      if (this.closing !== undefined || this.clients.size >= maxClients) {
        socket.destroy();
        return;
      }
      this.clients.add(socket);
      socket.once('close', () => this.clients.delete(socket));
    });
    this.server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // Both listen() and accept() hand the server net.Sockets (TCP, Unix or vsock).
      if (socket instanceof Socket) this.onConnect(req, socket, head);
      else socket.destroy();
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.onRequest(req, res);
    });
    this.server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
      answerRaw(socket, 400, 'upgrade is not proxied; use CONNECT');
    });
  }

  /** Starts listening; resolves with the Unix socket path or the bound TCP address. */
  listen(at: EgressListenTarget): Promise<string | AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(err);
      };
      this.server.once('error', onError);
      const done = (): void => {
        this.server.off('error', onError);
        const address = this.server.address();
        if (address === null) reject(new Error('the proxy is not listening'));
        else resolve(address);
      };
      if ('path' in at) this.server.listen(at.path, done);
      else this.server.listen(at.port, at.host, done);
    });
  }

  /** Serves a connection accepted elsewhere (a vsock port), as if it had come to `listen`. */
  accept(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  /** Hosts reached with bytes in and out, and the denied attempts, so far. */
  stats(): EgressReport {
    return this.statsCounter.snapshot();
  }

  /**
   * Stops listening and ends every client and upstream connection. Safe to call twice; the
   * stats stay readable afterwards.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const watch of this.watches) watch.stop();
      for (const socket of this.upstreams) socket.destroy();
      for (const socket of this.clients) socket.destroy();
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => {
        resolve();
      });
    });
    return this.closing;
  }

  private isClosing(): boolean {
    return this.closing !== undefined;
  }

  private onConnect(req: IncomingMessage, client: Socket, head: Buffer): void {
    const parsed = parseConnectTarget(req.url ?? '');
    if (parsed.target === undefined) {
      answerRaw(client, 400, parsed.error);
      return;
    }
    const target = parsed.target;
    // The server has let go of this socket; until the tunnel owns it, a reset from the
    // client must end it quietly rather than surface as an unhandled 'error'.
    const onEarlyError = (): void => {
      client.destroy();
    };
    client.on('error', onEarlyError);
    void this.open(target, () => client.destroyed).then((opened) => {
      client.off('error', onEarlyError);
      if (opened.socket === undefined) {
        answerRaw(client, opened.status, opened.reason);
        return;
      }
      this.tunnel(client, opened.socket, head);
    });
  }

  /** Joins the client and upstream sockets after a successful CONNECT. */
  private tunnel(client: Socket, upstream: Socket, head: Buffer): void {
    const watch = this.watch(() => {
      client.destroy();
      upstream.destroy();
    });
    let ended = false;
    const endBoth = (): void => {
      if (ended) return;
      ended = true;
      this.unwatch(watch);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', endBoth);
    upstream.on('error', endBoth);
    client.on('close', endBoth);
    upstream.on('close', endBoth);
    client.on('data', () => {
      watch.touch();
    });
    upstream.on('data', () => {
      watch.touch();
    });
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    // pipe() forwards back-pressure and each side's end (FIN) to the other; the pair is torn
    // down once either socket closes or fails.
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const parsed = parseAbsoluteTarget(req.url ?? '');
    if (parsed.target === undefined) {
      answer(res, 400, parsed.error);
      return;
    }
    const { target, path } = parsed;
    void this.open(target, () => req.socket.destroyed).then((opened) => {
      if (opened.socket === undefined) {
        answer(res, opened.status, opened.reason);
        return;
      }
      this.forward(req, res, target, path, opened.socket);
    });
  }

  /** Sends one absolute-form request upstream on the connected socket and relays the answer. */
  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    target: ProxyTarget,
    path: string,
    upstream: Socket,
  ): void {
    const watch = this.watch(() => {
      if (!res.headersSent) answer(res, 504, 'upstream went quiet');
      else res.destroy();
      upstream.destroy();
    });
    const outgoing = httpRequest({
      method: req.method,
      path,
      headers: forwardedRequestHeaders(req.rawHeaders, target),
      setHost: false,
      // The socket is already connected to the checked address: Node sends the request on
      // it instead of resolving and connecting itself.
      createConnection: () => upstream,
    });
    const finish = (): void => {
      this.unwatch(watch);
      upstream.destroy();
    };
    outgoing.on('response', (incoming) => {
      watch.touch();
      res.writeHead(
        incoming.statusCode ?? 502,
        incoming.statusMessage,
        endToEndHeaders(incoming.rawHeaders),
      );
      incoming.on('data', () => {
        watch.touch();
      });
      incoming.pipe(res);
      incoming.on('end', finish);
    });
    outgoing.on('error', () => {
      if (!res.headersSent) answer(res, 502, 'upstream failed');
      else res.destroy();
      finish();
    });
    res.on('close', finish);
    req.on('data', () => {
      watch.touch();
    });
    req.pipe(outgoing);
  }

  /**
   * Judges a target and, when it passes, connects to the first of its addresses that passes
   * too (trying the next on a connect failure). `abandoned` tells whether the client has gone
   * meanwhile, so a socket opened for nobody is closed at once.
   */
  private async open(target: ProxyTarget, abandoned: () => boolean): Promise<Opened> {
    if (this.isClosing()) return { status: 503, reason: 'the proxy is shutting down' };
    const refused = this.options.policy.checkTarget(target);
    if (refused !== undefined) return this.deny(target, undefined, refused);
    if (this.active >= this.options.maxConnections) {
      return this.deny(target, undefined, 'connection_limit', 429);
    }
    this.active += 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.active -= 1;
    };
    try {
      const opened = await this.openAdmitted(target);
      if (opened.socket === undefined) {
        release();
        return opened;
      }
      const socket = opened.socket;
      if (this.isClosing() || abandoned()) {
        socket.destroy();
        release();
        return { status: 503, reason: 'the client went away' };
      }
      this.upstreams.add(socket);
      this.statsCounter.track(target.host.host, target.port, socket);
      socket.once('close', () => {
        this.upstreams.delete(socket);
        release();
      });
      return opened;
    } catch (err) {
      release();
      this.options.logger.warn({ err, target: describe(target) }, 'egress connection failed');
      this.statsCounter.recordFailure();
      return { status: 502, reason: 'upstream failed' };
    }
  }

  /** Lookup, address checks and connect for a target that passed checkTarget. */
  private async openAdmitted(target: ProxyTarget): Promise<Opened> {
    let addresses: readonly ResolvedAddress[];
    if (target.host.kind === 'ip') {
      addresses = [{ address: target.host.host, family: target.host.family }];
    } else {
      const found = await this.withinIdle(this.resolve(target.host.host).catch(() => undefined));
      if (found === 'idle') return this.failed(504, `lookup of ${target.host.host} timed out`);
      if (found === undefined || found.length === 0) {
        return this.failed(502, `cannot resolve ${target.host.host}`);
      }
      addresses = found;
    }
    const passing: ResolvedAddress[] = [];
    let firstRefusal: { address: string; reason: DenialReason } | undefined;
    for (const a of addresses) {
      const checked = this.options.policy.checkAddress(target, a.address);
      if (checked.refusal === undefined) passing.push(checked);
      else firstRefusal ??= { address: a.address, reason: checked.refusal };
    }
    if (passing.length === 0 && firstRefusal !== undefined) {
      return this.deny(target, firstRefusal.address, firstRefusal.reason);
    }
    for (const a of passing) {
      const socket = this.connect({ address: a.address, family: a.family, port: target.port });
      const outcome = await this.withinIdle(connected(socket));
      if (outcome === true) return { socket };
      socket.destroy();
      if (outcome === 'idle') return this.failed(504, `connect to ${describe(target)} timed out`);
    }
    return this.failed(502, `cannot connect to ${describe(target)}`);
  }

  /** Races a step against the idle timeout (a lookup or a connect must not hang forever). */
  private withinIdle<T>(step: Promise<T>): Promise<T | 'idle'> {
    let cancel: (() => void) | undefined;
    const idle = new Promise<'idle'>((resolve) => {
      cancel = this.options.scheduler.setTimeout(() => {
        resolve('idle');
      }, this.options.idleTimeoutMs);
    });
    return Promise.race([step, idle]).finally(() => cancel?.());
  }

  private failed(status: number, reason: string): Opened {
    this.statsCounter.recordFailure();
    return { status, reason };
  }

  private deny(
    target: ProxyTarget,
    address: string | undefined,
    reason: DenialReason,
    status = 403,
  ): Opened {
    const denial = describeDenial(
      { host: target.host.host, port: target.port, address },
      reason,
      this.options.clock.now(),
    );
    if (this.statsCounter.recordDenial(denial)) {
      try {
        this.options.onDenied?.(denial);
      } catch (err) {
        this.options.logger.warn({ err }, 'egress onDenied callback failed');
      }
    }
    return { status, reason: denial.message };
  }

  private watch(onIdle: () => void): IdleWatch {
    const watch = new IdleWatch(
      this.options.clock,
      this.options.scheduler,
      this.options.idleTimeoutMs,
      () => {
        this.watches.delete(watch);
        onIdle();
      },
    );
    this.watches.add(watch);
    return watch;
  }

  private unwatch(watch: IdleWatch): void {
    watch.stop();
    this.watches.delete(watch);
  }
}

/** Resolves true once the socket connects, false if it fails first. */
function connected(socket: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    const onConnect = (): void => {
      socket.off('error', onError);
      resolve(true);
    };
    const onError = (): void => {
      socket.off('connect', onConnect);
      resolve(false);
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

function describe(target: ProxyTarget): string {
  return formatHostPort(target.host.host, target.port);
}

/** A short plain-text answer on the server's response; the client connection then closes. */
function answer(res: ServerResponse, status: number, reason: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${reason}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

/**
 * The same on a socket the HTTP server has handed over (CONNECT, upgrade): a status line,
 * three header fields and the reason, then the socket is destroyed once that is written.
 */
function answerRaw(socket: Duplex, status: number, reason: string): void {
  if (socket.destroyed) return;
  const body = `${reason}\n`;
  // Read and drop whatever the client sent ahead (an optimistic TLS ClientHello), so closing
  // with unread data does not reset the connection before the answer is read.
  socket.resume();
  socket.on('error', () => {
    socket.destroy();
  });
  const response =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body;
  socket.end(response, () => {
    socket.destroy();
  });
}
