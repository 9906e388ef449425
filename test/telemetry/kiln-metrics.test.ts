import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { KilnMetrics } from '../../src/telemetry/kiln-metrics.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { okOutcome } from '../helpers/fake-build-runner.js';
import { sampleTar } from '../helpers/tar-builder.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
});

describe('/metrics', () => {
  it('exposes build, queue, upload and VM boot metrics in Prometheus text', async () => {
    h = await createHarness({ env: { KILN_MAX_CONCURRENT_BUILDS: '1' } });
    const token = await h.token('acme');
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const fd = new FormData();
      fd.append('source', new Blob([sampleTar()]), 'a.tar');
      const res = await h.app.request('/builds', {
        method: 'POST',
        body: fd,
        headers: { authorization: `Bearer ${token}` },
      });
      ids.push(((await res.json()) as { id: string }).id);
    }
    await h.runner.waitForRuns(1);
    const during = await (await h.app.request('/metrics')).text();
    expect(during).toMatch(/^kiln_queue_length 1$/m);
    expect(during).toMatch(/^kiln_active_builds 1$/m);
    expect(during).toMatch(new RegExp(`^kiln_upload_bytes_total ${2 * sampleTar().length}$`, 'm'));

    const run = h.runner.runOf(ids[0]!);
    run.sink.mark('vm_start', h.time.now());
    h.time.advance(1500);
    run.sink.mark('agent', h.time.now());
    h.time.advance(40_500);
    run.finish(okOutcome('acme/x:y'));
    await h.runner.waitForRuns(2);
    h.manager.cancel('acme', ids[1]!);
    await new Promise((resolve) => setImmediate(resolve));
    // The source removals run after the terminal statuses; their times are stored once done.
    await eventually(() => ids.every((id) => h?.store.get(id)?.timings.afterFinish != null));
    const after = await (await h.app.request('/metrics')).text();
    expect(after).toMatch(/^kiln_builds_total\{status="ready"\} 1$/m);
    expect(after).toMatch(/^kiln_build_duration_seconds_sum\{status="ready"\} 42$/m);
    expect(after).toMatch(/^kiln_vm_boot_seconds_count 1$/m);
    expect(after).toMatch(/^kiln_vm_boot_seconds_sum 1.5$/m);
    // One observation per phase of the finished build; the guest's 5 s within the 40.5 s
    // agent window, the rest of it agent_other.
    expect(after).toMatch(/^kiln_build_phase_seconds_sum\{phase="vm_start"\} 1.5$/m);
    expect(after).toMatch(/^kiln_build_phase_seconds_bucket\{phase="vm_start",le="\+Inf"\} 1$/m);
    expect(after).toMatch(/^kiln_build_phase_seconds_sum\{phase="building"\} 3$/m);
    expect(after).toMatch(/^kiln_build_phase_seconds_sum\{phase="agent_other"\} 35.5$/m);
    expect(after).toMatch(/^kiln_build_phase_seconds_count\{phase="source_removal"\} 2$/m);
    expect(after).toMatch(/^kiln_build_phase_seconds_count\{phase="queued"\} 2$/m);
    expect(after).toMatch(/^kiln_queue_length 0$/m);
  });
});

describe('cache disk metrics', () => {
  it('counts hits and misses and reads the disk gauges at scrape time', async () => {
    const metrics = new KilnMetrics();
    let seen = { disks: 1, sizeBytes: 1024, usedBytes: 10 };
    metrics.observeCaches({ observe: () => seen });
    metrics.cacheAttached(false);
    metrics.cacheAttached(true);
    metrics.cacheAttached(true);
    let text = await metrics.render();
    expect(text).toMatch(/kiln_cache_attaches_total\{result="hit"\} 2/);
    expect(text).toMatch(/kiln_cache_attaches_total\{result="miss"\} 1/);
    expect(text).toMatch(/kiln_cache_disk_size_bytes 1024/);
    seen = { disks: 2, sizeBytes: 2048, usedBytes: 30 };
    text = await metrics.render();
    expect(text).toMatch(/kiln_cache_disks 2/);
    expect(text).toMatch(/kiln_cache_disk_used_bytes 30/);
    await metrics.close();
  });
});

describe('/metrics registry storage', () => {
  it('reports the blobs the registry stores and their bytes', async () => {
    h = await createHarness();
    const empty = await (await h.app.request('/metrics')).text();
    expect(empty).toMatch(/^kiln_registry_blobs 0$/m);
    expect(empty).toMatch(/^kiln_registry_blob_bytes 0$/m);
    const admin = await h.token('operator', ['registry:admin']);
    const blob = Buffer.from('twelve bytes');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const res = await h.app.request(`/v2/library/x/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: blob,
      headers: {
        authorization: `Basic ${Buffer.from(`operator:${admin}`).toString('base64')}`,
        'content-type': 'application/octet-stream',
      },
    });
    expect(res.status).toBe(201);
    const after = await (await h.app.request('/metrics')).text();
    expect(after).toMatch(/^kiln_registry_blobs 1$/m);
    expect(after).toMatch(/^kiln_registry_blob_bytes 12$/m);
  });
});
