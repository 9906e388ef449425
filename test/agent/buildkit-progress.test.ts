import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { digestFromMetadata } from '../../agent/engines/buildkit-metadata.js';
import { BuildKitProgressParser, phaseOf } from '../../agent/engines/buildkit-progress.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/buildkit');

async function parseFixture(
  name: string,
): Promise<{ text: string; phases: string[]; parser: BuildKitProgressParser }> {
  const parser = new BuildKitProgressParser();
  let text = '';
  const phases: string[] = [];
  for (const line of (await readFile(path.join(fixtures, name), 'utf8')).split('\n')) {
    const u = parser.parseLine(line);
    text += u.text;
    if (u.phase) phases.push(u.phase);
  }
  return { text, phases, parser };
}

describe('BuildKit rawjson progress', () => {
  it('turns a recorded build into plain-style log lines with vertex numbers, logs and durations', async () => {
    const { text } = await parseFixture('rawjson-build-push-cache.jsonl');
    const lines = text.split('\n');
    expect(lines).toContain('#1 [internal] load build definition from Dockerfile');
    expect(lines).toContain('#1 transferring dockerfile: 108 done');
    expect(lines).toContain('#1 DONE 0.0s');
    expect(lines).toContain('#7 [3/3] RUN echo "built" > /built.txt && cat /hello.txt');
    expect(lines).toContain('#7 hello from kiln');
    expect(lines).toContain('#7 warning: café not found');
    expect(lines).toContain('#7 DONE 0.3s');
    expect(lines).toContain('#8 exporting to image');
    expect(
      lines.filter((l) => l.startsWith('#8 pushing manifest for 10.0.2.100:5000/acme/web:b_abc')),
    ).toHaveLength(1);
  });

  it('reports the pushing and exporting_cache phases in order, once each', async () => {
    const { phases } = await parseFixture('rawjson-build-push-cache.jsonl');
    expect(phases).toEqual(['pushing', 'exporting_cache']);
  });

  it('collects the base images BuildKit resolved from FROM vertices', async () => {
    const { parser } = await parseFixture('rawjson-build-push-cache.jsonl');
    expect(parser.resolvedBaseImages()).toEqual({
      'docker.io/library/busybox:latest':
        'sha256:78b2d57c4d2a1c6b2a9b79ef9a0e3fd86ac86c7c9e0d2e0a7b3a1f9b9e3bd2c1',
    });
  });

  it('shows a failed vertex error, cached steps and the non-JSON error line', async () => {
    const { text } = await parseFixture('rawjson-run-failure.jsonl');
    expect(text).toContain('#1 CACHED\n');
    expect(text).toContain('#2 sh: boom\n');
    expect(text).toContain(
      '#2 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3\n',
    );
    expect(text).toContain('error: failed to solve:');
  });

  it('passes garbage through as text and ignores empty lines', () => {
    const parser = new BuildKitProgressParser();
    expect(parser.parseLine('')).toEqual({ text: '', phase: null });
    expect(parser.parseLine('{"vertexes":')).toEqual({ text: '{"vertexes":\n', phase: null });
    expect(parser.parseLine('[1,2]')).toEqual({ text: '[1,2]\n', phase: null });
  });

  it('maps exporter vertex names to phases', () => {
    expect(phaseOf('exporting to image')).toBe('pushing');
    expect(phaseOf('exporting cache to registry')).toBe('exporting_cache');
    expect(phaseOf('exporting cache')).toBe('exporting_cache');
    expect(phaseOf('[2/3] RUN make')).toBeNull();
  });
});

describe('BuildKit metadata file', () => {
  it('reads containerimage.digest from a recorded metadata file', async () => {
    const text = await readFile(path.join(fixtures, 'metadata-image-push.json'), 'utf8');
    expect(digestFromMetadata(text)).toBe(
      'sha256:4c1e9d2f7a65b0b8e8a71c2b7d3b0e6f3e2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c',
    );
  });

  it('falls back to the descriptor digest and rejects anything else', () => {
    const d = `sha256:${'e'.repeat(64)}`;
    expect(digestFromMetadata(JSON.stringify({ 'containerimage.descriptor': { digest: d } }))).toBe(
      d,
    );
    expect(
      digestFromMetadata(JSON.stringify({ 'containerimage.digest': 'sha256:short' })),
    ).toBeNull();
    expect(digestFromMetadata('not json')).toBeNull();
    expect(digestFromMetadata('[]')).toBeNull();
  });
});
