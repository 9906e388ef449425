import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readConfigVolume } from '../../agent/volumes/read-config-volume.js';
import { isBuildFailure } from '../../common/errors/build-failure.js';
import type { BuildJob } from '../../common/protocol/build-job.js';
import { createBuildJob } from '../../src/vm/build-job-factory.js';
import { writeConfigVolume } from '../../src/vm/config-volume.js';
import { tarArchive } from '../helpers/tar-builder.js';
import { makeTestBuild, TEST_JOB_OPTIONS } from '../vm/vm-test-build.js';

function job(): BuildJob {
  return createBuildJob(makeTestBuild(), TEST_JOB_OPTIONS);
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err: unknown = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  if (!isBuildFailure(err)) throw err;
  return { code: err.code, message: err.message };
}

describe('readConfigVolume', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-config-volume-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the build.json the host wrote, whatever follows the archive on the disk', async () => {
    const file = path.join(dir, 'config.img');
    const written = job();
    await writeConfigVolume(file, written);
    await appendFile(file, Buffer.alloc(64 * 1024, 0xee));
    expect(await readConfigVolume(file)).toEqual(written);
  });

  it('finds build.json after other entries', async () => {
    const file = path.join(dir, 'config.img');
    const text = JSON.stringify(job());
    await writeFile(
      file,
      tarArchive(
        { name: 'README', content: 'x'.repeat(700) },
        { name: './build.json', content: text },
      ),
    );
    expect(await readConfigVolume(file)).toEqual(job());
  });

  it('fails as internal when the volume holds no build.json, an invalid one or no tar', async () => {
    const none = path.join(dir, 'none.img');
    await writeFile(none, tarArchive({ name: 'other.json', content: '{}' }));
    expect(await failure(readConfigVolume(none))).toEqual({
      code: 'internal',
      message: 'the config volume holds no build.json',
    });

    const invalid = path.join(dir, 'invalid.img');
    await writeFile(invalid, tarArchive({ name: 'build.json', content: '{"version":2}' }));
    const bad = await failure(readConfigVolume(invalid));
    expect(bad.code).toBe('internal');
    expect(bad.message).toMatch(/^build\.json is invalid: /);

    const garbage = path.join(dir, 'garbage.img');
    await writeFile(garbage, Buffer.alloc(4096, 0x41));
    const notTar = await failure(readConfigVolume(garbage));
    expect(notTar.code).toBe('internal');
    expect(notTar.message).toMatch(/not a valid tar/);
  });

  it('fails as internal when build.json is cut short', async () => {
    const file = path.join(dir, 'short.img');
    const archive = tarArchive({ name: 'build.json', content: JSON.stringify(job()) });
    await writeFile(file, archive.subarray(0, 600));
    expect(await failure(readConfigVolume(file))).toEqual({
      code: 'internal',
      message: 'build.json is truncated',
    });
  });
});
