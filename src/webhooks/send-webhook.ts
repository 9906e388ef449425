import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { AddressClassifier } from '../egress/address-classifier.js';
import type { EgressConnector } from '../egress/egress-connector.js';
import { DENIAL_MESSAGES } from '../egress/egress-denial.js';
import type { EgressResolver, ResolvedAddress } from '../egress/egress-resolver.js';
import { formatHostPort, normalizeHost } from '../egress/normalize-host.js';
import type { Scheduler } from '../time/scheduler.js';

/** How webhook requests reach the network: the egress proxy's ports, injected for tests. */
export interface WebhookNetwork {
  resolve: EgressResolver;
  connect: EgressConnector;
}

/** The address policy: the egress classifier plus the operator's exact host:port exceptions. */
export interface WebhookAddressPolicy {
  classify: AddressClassifier;
  exceptions: readonly { readonly host: string; readonly port: number }[];
}

/** What one attempt got: the status when a response came, else the error. */
export type SendResult =
  { statusCode: number; error: string | null } | { statusCode: null; error: string };

/** Bytes of a response body read (and discarded) before the connection is closed. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * Resolves the URL's host once, judges every address as the egress proxy does (loopback,
 * private, metadata, … refused unless `host:port` is an exact operator exception) and picks
 * the first permitted one; refused → no connection at all.
 */
async function pickAddress(
  url: URL,
  port: number,
  policy: WebhookAddressPolicy,
  network: WebhookNetwork,
): Promise<{ address: ResolvedAddress } | { refused: string }> {
  const host = normalizeHost(url.hostname);
  if (host === undefined) return { refused: `invalid host ${url.hostname}` };
  const excepted = policy.exceptions.some((e) => e.host === host.host && e.port === port);
  let addresses: readonly ResolvedAddress[];
  if (host.kind === 'ip') {
    addresses = [{ address: host.host, family: host.family }];
  } else {
    try {
      addresses = await network.resolve(host.host);
    } catch (err) {
      return { refused: `cannot resolve ${host.host}: ${(err as Error).message}` };
    }
  }
  if (addresses.length === 0) return { refused: `${host.host} has no address` };
  if (excepted) return { address: addresses[0] as ResolvedAddress };
  for (const address of addresses) {
    if (policy.classify(address.address) === undefined) return { address };
  }
  const first = addresses[0] as ResolvedAddress;
  const reason = policy.classify(first.address);
  return {
    refused: `refused ${formatHostPort(first.address, port)}: ${reason === undefined ? 'not permitted' : DENIAL_MESSAGES[reason]} (allow it with KILN_WEBHOOK_EXCEPTIONS=${formatHostPort(host.host, port)})`,
  };
}

/**
 * One webhook attempt: POST `body` to `url`, connecting to the checked address itself (the
 * name is not resolved a second time, so DNS rebinding cannot swap it), never following a
 * redirect (a 3xx is a failed attempt), and giving up after `timeoutMs` (on the injected
 * scheduler). Resolves with what happened; never rejects.
 */
export async function sendWebhook(options: {
  url: string;
  body: string;
  headers: Record<string, string>;
  policy: WebhookAddressPolicy;
  network: WebhookNetwork;
  timeoutMs: number;
  scheduler: Scheduler;
}): Promise<SendResult> {
  const url = new URL(options.url);
  const tls = url.protocol === 'https:';
  const port = url.port === '' ? (tls ? 443 : 80) : Number(url.port);
  const picked = await pickAddress(url, port, options.policy, options.network);
  if ('refused' in picked) return { statusCode: null, error: picked.refused };
  const { address } = picked;

  return new Promise<SendResult>((resolve) => {
    let settled = false;
    let cancelTimeout = (): void => undefined;
    const done = (result: SendResult) => {
      if (settled) return;
      settled = true;
      cancelTimeout();
      resolve(result);
    };
    const createConnection = (): Socket => {
      const raw = options.network.connect({
        address: address.address,
        family: address.family,
        port,
      });
      if (!tls) return raw;
      const servername = normalizeHost(url.hostname)?.kind === 'name' ? url.hostname : undefined;
      return tlsConnect({ socket: raw, ...(servername ? { servername } : {}) });
    };
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({
        method: 'POST',
        host: url.hostname,
        port,
        path: `${url.pathname}${url.search}`,
        headers: {
          ...options.headers,
          host: url.host,
          'content-length': String(Buffer.byteLength(options.body)),
        },
        createConnection,
      });
    } catch (err) {
      done({ statusCode: null, error: (err as Error).message });
      return;
    }
    cancelTimeout = options.scheduler.setTimeout(() => {
      req.destroy(new Error(`no response within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    req.on('error', (err) => {
      done({ statusCode: null, error: err.message });
    });
    req.on('response', (res: IncomingMessage) => {
      const statusCode = res.statusCode ?? 0;
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_RESPONSE_BYTES) res.destroy();
      });
      const finish = () => {
        const error =
          statusCode >= 300 && statusCode < 400
            ? `redirect not followed (${statusCode}${res.headers.location ? ` to ${res.headers.location}` : ''})`
            : statusCode >= 200 && statusCode < 300
              ? null
              : `HTTP ${statusCode}`;
        req.destroy();
        done({ statusCode, error });
      };
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
    });
    req.end(options.body);
  });
}
