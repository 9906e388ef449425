import { existsSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { CapturedLog, LOG_LEVEL } from '../helpers/captured-log.js';

describe('log lines say what is true, at the level it deserves', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('a client that disconnects mid-PATCH is info, never an error or a 500', async () => {
    const log = new CapturedLog();
    h = await createHarness({ log });
    const auth = `Basic ${Buffer.from(
      `kiln:${await h.apiTokens.create({ tenant: 'ops', scopes: ['registry:admin'], ttlSeconds: 3600 })}`,
    ).toString('base64')}`;
    const started = await fetch(`${h.url}/v2/library/gone/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: auth },
    });
    const location = started.headers.get('location')!;
    await new Promise<void>((resolve) => {
      const req = http.request(`${h!.url}${location}`, {
        method: 'PATCH',
        headers: { authorization: auth, 'content-length': '100000' },
      });
      req.on('error', () => {
        resolve();
      });
      req.write(Buffer.alloc(1000, 1), () => {
        // Leave only once the server has the request and wrote the bytes (its upload file
        // holds them), so the disconnect is mid-body however loaded the machine is.
        const file = path.join(h!.dataDir, 'registry', 'uploads', path.basename(location));
        eventually(() => existsSync(file) && statSync(file).size >= 1000, 30_000).then(
          () => {
            req.destroy();
            resolve();
          },
          () => {
            req.destroy();
            resolve();
          },
        );
      });
    });
    const done = () =>
      log.find('request done').filter((l) => l.method === 'PATCH' && l.path === location);
    await eventually(() => done().length === 1);
    expect(log.errors()).toEqual([]);
    expect(done()[0]).toMatchObject({ status: 400 });
    const aborted = log.find('registry: client disconnected before its request was complete');
    expect(aborted).toHaveLength(1);
    expect(aborted[0]?.level).toBe(LOG_LEVEL.info);
  });

  it('/readyz while starting answers 503 NOT_READY saying so, and logs no error', async () => {
    const log = new CapturedLog();
    h = await createHarness({ log, start: false });
    const res = await h.app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      error: {
        code: 'NOT_READY',
        message: 'The daemon is starting: restart recovery is not done yet.',
      },
    });
    expect(log.errors()).toEqual([]);
    expect(log.lines.some((l) => 'err' in l)).toBe(false);
    const done = log.find('request done');
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ level: LOG_LEVEL.info, status: 503 });
  });
});
