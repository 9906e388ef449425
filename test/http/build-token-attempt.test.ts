import { afterEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { sampleTar } from '../helpers/tar-builder.js';

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0).reverse()) await h.close();
});

async function status(h: Harness, auth: string, path = '/v2/'): Promise<number> {
  const res = await fetch(`${h.url}${path}`, { headers: { authorization: auth } });
  await res.arrayBuffer();
  return res.status;
}

describe('a build token belongs to one attempt of its build', () => {
  it('after a restart re-runs the build, the dead attempt token is refused over Bearer, Basic and /v2/token', async () => {
    const first = await createHarness();
    const fd = new FormData();
    fd.append('source', new Blob([sampleTar()]), 'a.tar');
    const res = await first.app.request('/builds', {
      method: 'POST',
      body: fd,
      headers: { authorization: `Bearer ${await first.token('acme')}` },
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await first.runner.waitForRuns(1);
    const dead = first.runner.runOf(id).input.registryToken;
    expect(await status(first, `Bearer ${dead}`)).toBe(200);
    // Shutdown aborts the run; the build stays non-terminal and runs again at the next start.
    await first.stop();

    const second = await createHarness({ dataDir: first.dataDir });
    harnesses.push(second);
    await second.runner.waitForRuns(1);
    const live = second.runner.runOf(id).input.registryToken;
    expect(second.manager.isBuildActive(id)).toBe(true);

    const basic = `Basic ${Buffer.from(`kiln:${dead}`).toString('base64')}`;
    expect(await status(second, `Bearer ${dead}`)).toBe(401);
    expect(await status(second, basic)).toBe(401);
    expect(await status(second, basic, '/v2/token?service=kiln&scope=repository:acme/x:pull')).toBe(
      401,
    );
    expect(await status(second, `Bearer ${live}`)).toBe(200);
  });
});
