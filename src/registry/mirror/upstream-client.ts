import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import type { UpstreamCredentials } from './upstream-credentials.js';
import { UpstreamError, type UpstreamFailure } from './upstream-error.js';
import { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate.js';
import type { Clock } from '../../../common/time/clock.js';

/**
 * Every manifest type the registry stores, indexes first (distribution spec "Pulling
 * manifests": the client names the types it accepts). Docker's schema 1 is not asked for:
 * it cannot be stored or verified by digest the same way.
 */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Seconds a bearer token is assumed valid when the token service does not say (Docker token spec). */
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew a bearer token this long before it expires, so a request never carries a dying one. */
const TOKEN_MARGIN_MS = 10_000;

/** A manifest as the upstream sent it (not yet verified). */
export interface UpstreamManifest {
  bytes: Buffer;
  contentType: string | undefined;
  /** The upstream's `Docker-Content-Digest`, when it sent one. */
  claimedDigest: string | undefined;
}

/** Redirects a blob request follows (Docker Hub sends one, to its CDN). */
const MAX_REDIRECTS = 5;

/** A blob download under way: the body, its announced size, and a way to stop it. */
export interface UpstreamBlob {
  body: Readable;
  /** `Content-Length`, or null when the upstream streams without one. */
  size: number | null;
  /** Stops the download (the body then errors). */
  abort(reason: Error): void;
}

/** What an UpstreamClient needs. */
export interface UpstreamClientOptions {
  /** The upstream's configured name, used in every error message. */
  name: string;
  /** The registry API's origin, `https://registry-1.docker.io`. */
  endpoint: string;
  credentials: UpstreamCredentials | null;
  /** Milliseconds to wait for an answer's headers (and, for manifests, its body). */
  timeoutMs: number;
  maxManifestBytes: number;
  clock: Clock;
  /** The fetch implementation; Node's global fetch unless given. */
  fetch?: typeof fetch;
}

interface Target {
  upstream: string;
  repository: string;
  reference: string;
}

/**
 * A client of one upstream registry: manifests by tag or digest and blobs as streams, with
 * the Docker token flow (a 401 with `WWW-Authenticate: Bearer realm,service,scope` is answered
 * by asking the realm for a token, anonymously or with Basic credentials) and plain Basic
 * upstreams. Bearer tokens are cached per repository until shortly before they expire. No
 * request is retried except once after a challenge: a failure is reported at once, named by
 * its cause, so that a build fails in seconds rather than in a retry loop.
 */
export class UpstreamClient {
  readonly name: string;
  private readonly endpoint: string;
  private readonly credentials: UpstreamCredentials | null;
  private readonly timeoutMs: number;
  private readonly maxManifestBytes: number;
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;
  private readonly tokens = new Map<string, { header: string; expiresAt: number }>();
  /** Set once the upstream asked for Basic: it is then sent with every request. */
  private basic = false;

  constructor(options: UpstreamClientOptions) {
    this.name = options.name;
    this.endpoint = options.endpoint;
    this.credentials = options.credentials;
    this.timeoutMs = options.timeoutMs;
    this.maxManifestBytes = options.maxManifestBytes;
    this.clock = options.clock;
    this.fetch = options.fetch ?? fetch;
  }

  /** GETs `/v2/<repository>/manifests/<reference>` with every supported manifest type accepted. */
  async manifest(repository: string, reference: string): Promise<UpstreamManifest> {
    const target = { upstream: this.name, repository, reference };
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(new Error('timeout'));
    }, this.timeoutMs);
    try {
      const res = await this.request(
        target,
        `/v2/${repository}/manifests/${reference}`,
        { accept: MANIFEST_ACCEPT },
        controller.signal,
      );
      const announced = Number(res.headers.get('content-length') ?? '0');
      if (announced > this.maxManifestBytes) {
        await res.body?.cancel();
        throw new UpstreamError(
          'invalid',
          target,
          `upstream ${this.name} sent a manifest for ${repository}:${reference} larger than ${this.maxManifestBytes} bytes`,
        );
      }
      const bytes = await this.readLimited(res, target);
      return {
        bytes,
        contentType: res.headers.get('content-type') ?? undefined,
        claimedDigest: res.headers.get('docker-content-digest') ?? undefined,
      };
    } catch (err) {
      throw this.failure(err, target, controller.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * GETs `/v2/<repository>/blobs/<digest>` and returns once the headers are in; the body is
   * the caller's to read (and to verify). Blobs go over node:http(s) rather than fetch: its
   * web-stream body costs several times more CPU per byte, the mirror's bottleneck on a cold
   * pull. Redirects (Docker Hub answers with one to its CDN) are followed; the Authorization
   * header is dropped when one leaves the origin, and an https upstream is never followed to
   * plain http. The token flow is the same as for manifests.
   */
  async blob(repository: string, digest: string): Promise<UpstreamBlob> {
    const target = { upstream: this.name, repository, reference: digest };
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(new Error('timeout'));
    }, this.timeoutMs);
    try {
      const url = `${this.endpoint}/v2/${repository}/blobs/${digest}`;
      let auth = this.cachedAuthorization(repository);
      let res = await this.nodeGet(target, url, auth, controller.signal);
      if (res.statusCode === 401) {
        const challenge = headerText(res.headers['www-authenticate']);
        res.resume();
        auth = await this.authorize(target, challenge, controller.signal);
        res = await this.nodeGet(target, url, auth, controller.signal);
      }
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        res.resume();
        throw this.statusError(status, target, auth !== undefined);
      }
      const length = headerText(res.headers['content-length']);
      return {
        body: res,
        size: length !== null && /^\d+$/.test(length) ? Number(length) : null,
        abort: (reason) => {
          controller.abort(reason);
        },
      };
    } catch (err) {
      throw this.failure(err, target, controller.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A GET over node:http(s) that follows redirects; resolves with the final response's head. */
  private async nodeGet(
    target: Target,
    url: string,
    authorization: string | undefined,
    signal: AbortSignal,
  ): Promise<IncomingMessage> {
    let current = new URL(url);
    let auth = authorization;
    for (let hop = 0; ; hop++) {
      const res = await requestHead(current, auth, signal);
      const status = res.statusCode ?? 0;
      const location = headerText(res.headers.location);
      if (![301, 302, 303, 307, 308].includes(status) || location === null) return res;
      res.resume();
      const next = new URL(location, current);
      const downgrade = current.protocol === 'https:' && next.protocol !== 'https:';
      if (hop >= MAX_REDIRECTS || downgrade || !['http:', 'https:'].includes(next.protocol)) {
        throw new UpstreamError(
          'invalid',
          target,
          `upstream ${this.name} redirected ${describe(target)} ${hop >= MAX_REDIRECTS ? 'too many times' : `to ${next.protocol} ${next.host}`}`,
        );
      }
      if (next.origin !== current.origin) auth = undefined;
      current = next;
    }
  }

  /** Sends a GET with the cached authorization, answers one challenge, maps failure statuses. */
  private async request(
    target: Target,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Response> {
    const url = `${this.endpoint}${path}`;
    let auth = this.cachedAuthorization(target.repository);
    let res = await this.get(url, headers, auth, signal);
    if (res.status === 401) {
      const challenge = res.headers.get('www-authenticate');
      await res.body?.cancel();
      auth = await this.authorize(target, challenge, signal);
      res = await this.get(url, headers, auth, signal);
    }
    if (res.ok) return res;
    await res.body?.cancel();
    throw this.statusError(res.status, target, auth !== undefined);
  }

  private get(
    url: string,
    headers: Record<string, string>,
    authorization: string | undefined,
    signal: AbortSignal,
  ): Promise<Response> {
    const all: Record<string, string> = { ...headers, 'user-agent': 'kiln-mirror' };
    if (authorization !== undefined) all.authorization = authorization;
    return this.fetch(url, { headers: all, signal, redirect: 'follow' });
  }

  private cachedAuthorization(repository: string): string | undefined {
    if (this.basic && this.credentials !== null) return basicHeader(this.credentials);
    const cached = this.tokens.get(repository);
    if (cached === undefined) return undefined;
    if (cached.expiresAt - TOKEN_MARGIN_MS <= this.clock.now().getTime()) {
      this.tokens.delete(repository);
      return undefined;
    }
    return cached.header;
  }

  /** Answers a 401's challenge: a bearer token from the realm, or Basic credentials. */
  private async authorize(
    target: Target,
    header: string | null,
    signal: AbortSignal,
  ): Promise<string> {
    const challenges = header === null ? [] : parseWwwAuthenticate(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer !== undefined) return this.bearerToken(target, bearer, signal);
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (this.credentials === null) {
        throw new UpstreamError(
          'unauthorized',
          target,
          `upstream ${this.name} requires credentials for ${describe(target)} and none are configured`,
        );
      }
      this.basic = true;
      return basicHeader(this.credentials);
    }
    throw new UpstreamError(
      'unauthorized',
      target,
      `upstream ${this.name} refused ${describe(target)} without a usable authentication challenge`,
    );
  }

  /** Docker token spec "Requesting a Token": GET realm?service=…&scope=…, Basic when configured. */
  private async bearerToken(
    target: Target,
    challenge: AuthChallenge,
    signal: AbortSignal,
  ): Promise<string> {
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new UpstreamError(
        'invalid',
        target,
        `upstream ${this.name} named no valid token realm`,
      );
    }
    // Credentials go to the realm, so it must be as protected as the upstream itself.
    const plainAllowed = this.endpoint.startsWith('http:');
    if (url.protocol !== 'https:' && !(plainAllowed && url.protocol === 'http:')) {
      throw new UpstreamError(
        'invalid',
        target,
        `upstream ${this.name} named a token realm that is not https`,
      );
    }
    if (challenge.params.service !== undefined)
      url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', `repository:${target.repository}:pull`);
    const headers: Record<string, string> = {
      'user-agent': 'kiln-mirror',
      accept: 'application/json',
    };
    if (this.credentials !== null) headers.authorization = basicHeader(this.credentials);
    const res = await this.fetch(url, { headers, signal, redirect: 'follow' });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new UpstreamError(
        'unauthorized',
        target,
        this.credentials === null
          ? `upstream ${this.name} gives no anonymous access to ${describe(target)}`
          : `upstream ${this.name} refused the configured credentials for ${describe(target)}`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw this.statusError(res.status, target, false);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = (await res.json()) as typeof body;
    } catch (err) {
      throw new UpstreamError(
        'invalid',
        target,
        `upstream ${this.name}'s token service sent no JSON`,
        { cause: err },
      );
    }
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new UpstreamError(
        'invalid',
        target,
        `upstream ${this.name}'s token service sent no token`,
      );
    }
    const seconds =
      typeof body.expires_in === 'number' && body.expires_in > 0
        ? body.expires_in
        : DEFAULT_TOKEN_SECONDS;
    const header = `Bearer ${token}`;
    this.tokens.set(target.repository, {
      header,
      expiresAt: this.clock.now().getTime() + seconds * 1000,
    });
    return header;
  }

  private async readLimited(res: Response, target: Target): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    if (res.body === null) return Buffer.alloc(0);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      total += chunk.length;
      if (total > this.maxManifestBytes) {
        throw new UpstreamError(
          'invalid',
          target,
          `upstream ${this.name} sent a manifest for ${describe(target)} larger than ${this.maxManifestBytes} bytes`,
        );
      }
      chunks.push(Buffer.from(chunk));
    }
    return Buffer.concat(chunks);
  }

  private statusError(status: number, target: Target, authorized: boolean): UpstreamError {
    let failure: UpstreamFailure;
    let why: string;
    if (status === 404) {
      failure = 'not_found';
      why = 'does not have it';
    } else if (status === 401 || status === 403) {
      failure = 'unauthorized';
      why =
        authorized && this.credentials !== null
          ? 'refused the configured credentials'
          : 'refused access (the image may not exist, or it needs credentials)';
    } else if (status === 429) {
      failure = 'rate_limited';
      why = 'limits the request rate (HTTP 429)';
    } else if (status >= 500) {
      failure = 'unreachable';
      why = `failed with HTTP ${status}`;
    } else {
      failure = 'invalid';
      why = `answered HTTP ${status}`;
    }
    return new UpstreamError(failure, target, `upstream ${this.name} ${why}: ${describe(target)}`);
  }

  /** Turns whatever a request threw into an UpstreamError naming the cause. */
  private failure(err: unknown, target: Target, signal: AbortSignal): UpstreamError {
    if (err instanceof UpstreamError) return err;
    if (signal.aborted) {
      return new UpstreamError(
        'unreachable',
        target,
        `upstream ${this.name} did not answer within ${Math.round(this.timeoutMs / 1000)} s: ${describe(target)}`,
        { cause: err },
      );
    }
    const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
    const own = (err as { code?: unknown } | null)?.code;
    const code =
      typeof cause?.code === 'string'
        ? cause.code
        : typeof own === 'string'
          ? own
          : err instanceof Error
            ? err.message
            : String(err);
    return new UpstreamError(
      'unreachable',
      target,
      `upstream ${this.name} is unreachable (${code}): ${describe(target)}`,
      {
        cause: err,
      },
    );
  }
}

function basicHeader(credentials: UpstreamCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

function describe(target: Target): string {
  const sep = target.reference.includes(':') ? '@' : ':';
  return `${target.repository}${sep}${target.reference}`;
}

/** One GET; resolves once the response's head is in (its body is the caller's). */
function requestHead(
  url: URL,
  authorization: string | undefined,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const headers: Record<string, string> = {
    'user-agent': 'kiln-mirror',
    'accept-encoding': 'identity',
  };
  if (authorization !== undefined) headers.authorization = authorization;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    // The signal is not given to request(): Node hands it to the agent's socket, which may
    // outlive the request, and destroys it with the abort's error where nobody may listen (a
    // socket not yet or no longer the request's), crashing the process. Here an abort destroys
    // the request while it lasts, without an error: the request then fails with "socket hang
    // up", its body with "aborted", and the caller reads the cause from the signal.
    const req = send(url, { method: 'GET', headers }, resolve);
    const onAbort = () => {
      req.destroy();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => {
      signal.removeEventListener('abort', onAbort);
    });
    // Kept for the request's life: a destroyed request may emit more than one error.
    req.on('error', reject);
    req.end();
  });
}

function headerText(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}
