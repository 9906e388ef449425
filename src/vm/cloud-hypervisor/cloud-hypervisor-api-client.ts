import { request } from 'node:http';
import type { CloudHypervisorVmConfig } from './cloud-hypervisor-vm-config.js';
import { VmError } from '../vm-error.js';

/** `GET /api/v1/vmm.ping` answer (OpenAPI `VmmPingResponse`). */
export interface VmmPingResponse {
  version: string;
  build_version?: string;
  pid?: number;
  features?: string[];
}

/** `GET /api/v1/vm.info` answer, reduced to what Kiln reads (OpenAPI `VmInfo`). */
export interface VmInfoResponse {
  state: 'Created' | 'Running' | 'Shutdown' | 'Paused' | 'BreakPoint';
}

export interface CloudHypervisorApiClientOptions {
  /** Path of the Unix socket given to `--api-socket path=…`. */
  socketPath: string;
  /** Per-request limit; a request over it fails with VMM_API_ERROR. */
  timeoutMs?: number | undefined;
}

/**
 * Turns a Cloud Hypervisor error body into messages. Current releases answer a JSON array of
 * the error chain's messages (vmm/src/api/http `error_response`); older ones a JSON object
 * with `message`, or the error's debug text.
 */
export function parseCloudHypervisorErrorBody(body: string): string[] {
  const text = body.trim();
  if (text === '') return [];
  try {
    const value: unknown = JSON.parse(text);
    if (Array.isArray(value)) return value.map((item) => String(item));
    if (typeof value === 'string') return [value];
    if (typeof value === 'object' && value !== null) {
      const message = (value as Record<string, unknown>).message;
      if (typeof message === 'string') return [message];
    }
  } catch {
    // Not JSON: the body is the message.
  }
  return [text];
}

/**
 * HTTP/1.1 client for Cloud Hypervisor's REST API over its Unix socket. Every request carries
 * Content-Length (the VMM's micro HTTP server does not read bodies without it, nor chunked
 * bodies); non-2xx answers become `VmError('VMM_API_ERROR')` with the status and the parsed
 * error chain in `details`.
 */
export class CloudHypervisorApiClient {
  private readonly socketPath: string;
  private readonly timeoutMs: number;

  constructor(options: CloudHypervisorApiClientOptions) {
    if (options.socketPath === '') throw new Error('socketPath is required');
    this.socketPath = options.socketPath;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async ping(): Promise<VmmPingResponse> {
    return (await this.call('GET', 'vmm.ping')) as VmmPingResponse;
  }

  async createVm(config: CloudHypervisorVmConfig): Promise<void> {
    await this.call('PUT', 'vm.create', config);
  }

  async bootVm(): Promise<void> {
    await this.call('PUT', 'vm.boot');
  }

  async vmInfo(): Promise<VmInfoResponse> {
    return (await this.call('GET', 'vm.info')) as VmInfoResponse;
  }

  async shutdownVm(): Promise<void> {
    await this.call('PUT', 'vm.shutdown');
  }

  async shutdownVmm(): Promise<void> {
    await this.call('PUT', 'vmm.shutdown');
  }

  /** One request; resolves with the parsed JSON body (undefined for 204 / empty bodies). */
  call(method: 'GET' | 'PUT', endpoint: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
    const path = `/api/v1/${endpoint}`;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          // One connection per call: no keep-alive state to go stale when the VMM exits.
          agent: false,
          headers: {
            Host: 'localhost',
            Accept: 'application/json',
            'Content-Length': String(payload.length),
            ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', (err) => {
            reject(
              new VmError('VMM_API_ERROR', `${method} ${path}: ${err.message}`, { cause: err }),
            );
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              if (text.trim() === '') {
                resolve(undefined);
                return;
              }
              try {
                resolve(JSON.parse(text));
              } catch (err) {
                reject(
                  new VmError('VMM_API_ERROR', `${method} ${path}: invalid JSON answer`, {
                    details: { status, body: text.slice(0, 1024) },
                    cause: err,
                  }),
                );
              }
              return;
            }
            const messages = parseCloudHypervisorErrorBody(text);
            reject(
              new VmError(
                'VMM_API_ERROR',
                `${method} ${path} answered ${status}${messages.length > 0 ? `: ${messages.join(': ')}` : ''}`,
                { details: { status, endpoint, messages } },
              ),
            );
          });
        },
      );
      req.on('timeout', () => {
        req.destroy(new Error(`no answer within ${this.timeoutMs} ms`));
      });
      req.on('error', (err) => {
        reject(new VmError('VMM_API_ERROR', `${method} ${path}: ${err.message}`, { cause: err }));
      });
      req.end(payload);
    });
  }
}
