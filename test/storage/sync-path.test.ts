import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { syncPath } from '../../src/storage/sync-path.js';

describe('syncPath', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-sync-path-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fsyncs a directory and a file by path', async () => {
    const file = path.join(dir, 'f');
    await writeFile(file, 'x');
    await expect(syncPath(dir)).resolves.toBeUndefined();
    await expect(syncPath(file)).resolves.toBeUndefined();
  });

  it('rejects a path that does not exist, with its errno code', async () => {
    await expect(syncPath(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
