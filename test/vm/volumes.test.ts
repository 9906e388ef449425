import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { list as listTar } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestBuild, TEST_JOB_OPTIONS } from './vm-test-build.js';
import { buildJobSchema } from '../../common/protocol/build-job.js';
import type { Build } from '../../src/builds/build.js';
import { createBuildJob } from '../../src/vm/build-job-factory.js';
import { writeConfigVolume } from '../../src/vm/config-volume.js';
import { createScratchVolume } from '../../src/vm/scratch-volume.js';
import { prepareSourceVolume } from '../../src/vm/source-volume.js';

function build(request: Partial<Build['request']> = {}): Build {
  return makeTestBuild({ request });
}

describe('volumes', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-volumes-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the config volume as an uncompressed tar holding only build.json, in whole sectors', async () => {
    const file = path.join(dir, 'config.tar');
    const job = createBuildJob(build(), TEST_JOB_OPTIONS);
    await writeConfigVolume(file, job);

    const raw = await readFile(file);
    expect(raw.length % 512).toBe(0);
    expect(raw.subarray(257, 262).toString()).toBe('ustar');
    const names: string[] = [];
    let body = '';
    await listTar({
      file,
      onReadEntry: (entry) => {
        names.push(entry.path);
        entry.on('data', (d: Buffer) => (body += d.toString()));
      },
    });
    expect(names).toEqual(['build.json']);
    expect(JSON.parse(body)).toEqual(job);
  });

  it('describes the build in build.json without secrets, tagging the build id only without image_name', () => {
    const job = createBuildJob(build(), {
      ...TEST_JOB_OPTIONS,
      mirrorUpstreams: ['ghcr.io', 'docker.io'],
    });
    expect(job.registry).toEqual({
      host: '10.0.2.100:5000',
      insecure: true,
      repository: 'acme/b_aaaaaaaaaaaaaaaaaaaa',
      tags: ['b_aaaaaaaaaaaaaaaaaaaa'],
      otherRefs: [],
      cacheRepository: 'cache/acme/main',
      // docker.io is always mapped (seeded library/ images), listed once.
      mirror: { namespace: 'mirror', upstreams: ['docker.io', 'ghcr.io'] },
    });
    expect(job.secretIds).toEqual(['npm']);
    expect(job.source).toEqual({
      sizeBytes: 700,
      sha256: 'a'.repeat(64),
      compression: 'gzip',
      maxUnpackedBytes: 5000,
      maxEntries: 10,
      maxPathBytes: 255,
    });
    expect(JSON.stringify(job)).not.toMatch(/token/i);
  });

  it('adds the latest tag when the build names its image', () => {
    const job = createBuildJob(build({ imageName: 'web' }), TEST_JOB_OPTIONS);
    expect(job.registry.tags).toEqual(['b_aaaaaaaaaaaaaaaaaaaa', 'latest']);
  });

  it('pushes every image_tags entry: tags of its own repository, the others as otherRefs', () => {
    const job = createBuildJob(
      {
        ...build({
          imageTags: [
            { name: 'web', tag: 'v1' },
            { name: 'team/api', tag: 'v1' },
            { name: 'web', tag: 'stable' },
          ],
        }),
        repository: 'acme/web',
      },
      TEST_JOB_OPTIONS,
    );
    expect(job.registry.repository).toBe('acme/web');
    expect(job.registry.tags).toEqual(['b_aaaaaaaaaaaaaaaaaaaa', 'v1', 'stable']);
    expect(job.registry.otherRefs).toEqual([{ repository: 'acme/team/api', tag: 'v1' }]);
    expect(buildJobSchema.parse(job)).toEqual(job);
  });

  it('creates the scratch disk sparse at the configured size, already formatted as ext4', async () => {
    const file = path.join(dir, 'scratch.img');
    await createScratchVolume(file, 20 * 1024 ** 3);
    const st = await stat(file);
    expect(st.size).toBe(20 * 1024 ** 3);
    // Only ext4 metadata is allocated (a few MiB), not the 20 GiB.
    expect(st.blocks * 512).toBeLessThan(32 * 1024 * 1024);
    // The ext4 superblock starts at byte 1024; its magic 0xEF53 sits at offset 56 in it.
    const handle = await open(file, 'r');
    const head = Buffer.alloc(2048);
    await handle.read(head, 0, head.length, 0);
    await handle.close();
    expect(head.readUInt16LE(1024 + 56)).toBe(0xef53);
  });

  it('removes the scratch file when formatting fails', async () => {
    const file = path.join(dir, 'scratch.img');
    await expect(createScratchVolume(file, 1024 ** 3, '/bin/false')).rejects.toThrow(
      /formatting the scratch disk failed/,
    );
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it('refuses to overwrite an existing scratch disk', async () => {
    const file = path.join(dir, 'scratch.img');
    await writeFile(file, 'x');
    await expect(createScratchVolume(file, 1024 ** 3)).rejects.toThrow(/EEXIST/);
  });

  it('zero-pads the source archive to whole sectors without changing its bytes', async () => {
    const file = path.join(dir, 'source.tar.gz');
    const content = Buffer.alloc(700, 7);
    await writeFile(file, content);
    expect(await prepareSourceVolume(file, 700)).toBe(1024);
    const padded = await readFile(file);
    expect(padded.length).toBe(1024);
    expect(padded.subarray(0, 700).equals(content)).toBe(true);
    expect(padded.subarray(700).every((b) => b === 0)).toBe(true);
    expect(await prepareSourceVolume(file, 700)).toBe(1024);
  });

  it('leaves a source already in whole sectors untouched', async () => {
    const file = path.join(dir, 'source.tar');
    await writeFile(file, Buffer.alloc(2048, 1));
    const before = await stat(file);
    expect(await prepareSourceVolume(file, 2048)).toBe(2048);
    expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);
  });

  it('rejects a source shorter than its recorded size', async () => {
    const file = path.join(dir, 'short.tar');
    const h = await open(file, 'w');
    await h.truncate(100);
    await h.close();
    await expect(prepareSourceVolume(file, 700)).rejects.toThrow(/shorter/);
  });
});
