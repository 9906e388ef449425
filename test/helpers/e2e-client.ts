import { readFile } from 'node:fs/promises';
import type { E2eDaemon } from './e2e-daemon.js';

/** A build as GET /builds/:id shows it (the fields the e2e tests look at). */
export interface BuildView {
  id: string;
  status: string;
  repository: string;
  tags: string[];
  attempts: number;
  request: Record<string, unknown>;
  result: {
    image_ref: string;
    image_refs?: string[];
    image_digest: string;
    provenance: Record<string, unknown>;
  } | null;
  error: { code: string; message: string; log_tail: string[] } | null;
  /** docs/contracts.md#timings */
  timings: {
    phases: Record<string, number>;
    total_seconds: number | null;
    unaccounted_seconds: number;
    host_observed: Record<string, number>;
    guest_reported: string[];
    guest_scaled: boolean;
    after_finish: Record<string, number> | null;
  };
}

const TERMINAL = new Set(['ready', 'failed', 'cancelled']);

/** A thin HTTP client for the Kiln API, as a tenant with one token. */
export class E2eClient {
  constructor(
    private readonly daemon: Pick<E2eDaemon, 'url'>,
    private readonly token: string,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, ...extra };
  }

  /** POST /builds with the archive at `sourcePath` and the given form fields. */
  async submit(sourcePath: string, fields: Record<string, string> = {}): Promise<BuildView> {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append('source', new Blob([await readFile(sourcePath)]), 'source.tar.gz');
    const res = await fetch(`${this.daemon.url}/builds`, {
      method: 'POST',
      headers: this.headers(),
      body: form,
    });
    const body: unknown = await res.json();
    if (res.status !== 202)
      throw new Error(`POST /builds → ${res.status}: ${JSON.stringify(body)}`);
    return body as BuildView;
  }

  async get(id: string): Promise<BuildView> {
    const res = await fetch(`${this.daemon.url}/builds/${id}`, { headers: this.headers() });
    if (!res.ok) throw new Error(`GET /builds/${id} → ${res.status}`);
    return (await res.json()) as BuildView;
  }

  async cancel(id: string): Promise<number> {
    const res = await fetch(`${this.daemon.url}/builds/${id}`, {
      method: 'DELETE',
      headers: this.headers(),
    });
    await res.arrayBuffer();
    return res.status;
  }

  async logs(id: string): Promise<string> {
    const res = await fetch(`${this.daemon.url}/builds/${id}/logs`, { headers: this.headers() });
    return res.text();
  }

  async putSecret(id: string, value: string): Promise<void> {
    const res = await fetch(`${this.daemon.url}/secrets/${id}`, {
      method: 'PUT',
      headers: this.headers({ 'content-type': 'application/json' }),
      body: JSON.stringify({ value }),
    });
    await res.arrayBuffer();
    if (res.status !== 200 && res.status !== 201)
      throw new Error(`PUT /secrets/${id} → ${res.status}`);
  }

  /** Polls until the build reaches `status` (or any terminal one); returns the last view. */
  async waitFor(
    id: string,
    until: (b: BuildView) => boolean = (b) => TERMINAL.has(b.status),
    timeoutSeconds = 240,
  ): Promise<BuildView> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      const build = await this.get(id);
      if (until(build)) return build;
      if (TERMINAL.has(build.status)) return build;
      if (Date.now() > deadline)
        throw new Error(`build ${id} still ${build.status} after ${timeoutSeconds} s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
