import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { Endpoint } from './cli-config.js';
import { CliExit, EXIT } from './cli-exit.js';

/** A build as the daemon shows it (the wire fields the CLI reads). */
export interface RemoteBuild {
  id: string;
  status: string;
  queue_position: number | null;
  repository: string;
  tags: string[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  result: { image_ref: string; image_refs?: string[]; image_digest: string } | null;
  error: { code: string; message: string; log_tail: string[] } | null;
  /** docs/contracts.md#timings */
  timings: {
    phases: Record<string, number>;
    total_seconds: number | null;
    unaccounted_seconds: number;
  };
}

/** A cache disk as GET /caches shows it (docs/contracts.md#caches). */
export interface RemoteCache {
  scope: string;
  size_bytes: number;
  used_bytes: number;
  created_at: string;
  last_commit_at: string | null;
  last_commit_build_id: string | null;
  last_build_id: string | null;
  last_build_at: string | null;
}

/** The tenant's webhook settings as /webhook-settings answers them (docs/contracts.md#webhooks). */
export interface RemoteWebhookSettings {
  default_url: string | null;
  signing_secret: string;
  previous_secret_expires_at: string | null;
}

/** Network failures worth a retry: the daemon was not there or the connection broke. */
export class DaemonUnreachable extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(`cannot reach the daemon at ${url} (${describeCause(cause)})`, { cause });
    this.name = 'DaemonUnreachable';
  }
}

function describeCause(cause: unknown): string {
  const inner = (cause as { cause?: unknown } | null)?.cause ?? cause;
  const code = (inner as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return inner instanceof Error ? inner.message : String(inner);
}

/** What to do about a daemon that cannot be reached (exit 3). */
export function unreachableExit(err: DaemonUnreachable): CliExit {
  return new CliExit(
    EXIT.unreachable,
    `${err.message}: is it running? Check KILN_URL or run \`kiln login URL\``,
    { cause: err },
  );
}

/** The token is valid but lacks the scope (403): exit 3, like a refused token. */
export class TokenForbidden extends CliExit {
  constructor(message: string) {
    super(EXIT.unreachable, message);
    this.name = 'TokenForbidden';
  }
}

/** Maps an error answer `{"error":{"code","message"}}` onto an exit code and what to do. */
function answerExit(status: number, body: string): CliExit {
  let code = `HTTP_${status}`;
  let message = body.trim().slice(0, 200);
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === 'string') code = parsed.error.code;
    if (typeof parsed.error?.message === 'string') message = parsed.error.message;
  } catch {
    // Not the daemon's JSON error shape (a proxy in between, say): keep the raw text.
  }
  if (status === 401) {
    return new CliExit(
      EXIT.unreachable,
      `the daemon refused the token (${code}): get a new one (\`kiln token create\` on the daemon host) and run \`kiln login URL\``,
    );
  }
  if (status === 403) {
    return new TokenForbidden(
      `the token is not allowed to do this (${code}): ${message} Ask for a token with the missing scope`,
    );
  }
  if (status >= 500) {
    return new CliExit(EXIT.failed, `the daemon failed (${code}): ${message} See the daemon's log`);
  }
  return new CliExit(EXIT.usage, `${message} (${code})`);
}

/**
 * The Kiln HTTP API as the CLI uses it. Every method throws {@link CliExit} for an error answer
 * and {@link DaemonUnreachable} when the daemon cannot be reached.
 */
export class KilnClient {
  constructor(private readonly endpoint: Endpoint) {}

  get url(): string {
    return this.endpoint.url;
  }

  private async request(
    method: string,
    pathname: string,
    init: { body?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.endpoint.url}${pathname}`, {
        method,
        headers: { authorization: `Bearer ${this.endpoint.token}`, ...init.headers },
        body: init.body,
        signal: init.signal,
      });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      throw new DaemonUnreachable(this.endpoint.url, err);
    }
    if (!res.ok) throw answerExit(res.status, await res.text());
    return res;
  }

  async listBuilds(query: { status?: string; limit: number }): Promise<RemoteBuild[]> {
    const params = new URLSearchParams({ limit: String(query.limit) });
    if (query.status !== undefined) params.set('status', query.status);
    const res = await this.request('GET', `/builds?${params.toString()}`);
    return ((await res.json()) as { builds: RemoteBuild[] }).builds;
  }

  async getBuild(id: string): Promise<RemoteBuild> {
    const res = await this.request('GET', `/builds/${encodeURIComponent(id)}`);
    return (await res.json()) as RemoteBuild;
  }

  async cancelBuild(id: string): Promise<RemoteBuild> {
    const res = await this.request('DELETE', `/builds/${encodeURIComponent(id)}`);
    return (await res.json()) as RemoteBuild;
  }

  /** GET /builds/:id/logs as a stream of text chunks. */
  async logs(id: string, tail?: number): Promise<Response> {
    const q = tail === undefined ? '' : `?tail=${tail}`;
    return this.request('GET', `/builds/${encodeURIComponent(id)}/logs${q}`);
  }

  /** Opens GET /builds/:id/events?follow=true after `lastEventId` (0: from the start). */
  async events(id: string, lastEventId: number, signal: AbortSignal): Promise<Response> {
    return this.request('GET', `/builds/${encodeURIComponent(id)}/events?follow=true`, {
      headers: lastEventId > 0 ? { 'last-event-id': String(lastEventId) } : {},
      signal,
    });
  }

  async putSecret(id: string, value: string): Promise<'created' | 'updated'> {
    const res = await this.request('PUT', `/secrets/${encodeURIComponent(id)}`, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value }),
    });
    await res.arrayBuffer();
    return res.status === 201 ? 'created' : 'updated';
  }

  async listSecrets(): Promise<{ id: string; updated_at: string }[]> {
    const res = await this.request('GET', '/secrets');
    return ((await res.json()) as { secrets: { id: string; updated_at: string }[] }).secrets;
  }

  async deleteSecret(id: string): Promise<void> {
    const res = await this.request('DELETE', `/secrets/${encodeURIComponent(id)}`);
    await res.arrayBuffer();
  }

  async listCaches(): Promise<RemoteCache[]> {
    const res = await this.request('GET', '/caches');
    return ((await res.json()) as { caches: RemoteCache[] }).caches;
  }

  async deleteCache(scope: string): Promise<void> {
    const res = await this.request('DELETE', `/caches/${encodeURIComponent(scope)}`);
    await res.arrayBuffer();
  }

  /** POST /webhook-settings/rotate-secret; without `overlapSeconds` the daemon's default. */
  async rotateWebhookSecret(overlapSeconds?: number): Promise<RemoteWebhookSettings> {
    const res = await this.request('POST', '/webhook-settings/rotate-secret', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(overlapSeconds === undefined ? {} : { overlap_seconds: overlapSeconds }),
    });
    return (await res.json()) as RemoteWebhookSettings;
  }

  /**
   * POST /builds with a streamed multipart `body` (chunked: its length is not known before the
   * archive is packed). node:http rather than fetch, so an early answer (a 4xx sent while the
   * upload is still running) is read at once and the rest of the body is dropped.
   */
  submitBuild(body: Readable, boundary: string, signal: AbortSignal): Promise<RemoteBuild> {
    const target = new URL('/builds', this.endpoint.url);
    const send = target.protocol === 'https:' ? https.request : http.request;
    return new Promise<RemoteBuild>((resolve, reject) => {
      let answered = false;
      const req = send(target, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.endpoint.token}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
        },
        signal,
      });
      req.on('response', (res) => {
        answered = true;
        body.unpipe(req);
        body.destroy();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 202) {
            resolve(JSON.parse(text) as RemoteBuild);
          } else {
            reject(answerExit(res.statusCode ?? 0, text));
          }
        });
      });
      req.on('error', (err) => {
        if (answered) return;
        reject(signal.aborted ? err : new DaemonUnreachable(this.endpoint.url, err));
      });
      body.on('error', (err) => {
        // An unreadable file in the context, or Ctrl-C: the upload ends here.
        if (answered) return;
        req.destroy(err);
        reject(err);
      });
      body.pipe(req);
    });
  }
}
