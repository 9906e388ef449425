import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BuildDirs } from '../../src/builds/build-dirs.js';

let dataDir: string;
let dirs: BuildDirs;

beforeEach(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-build-dirs-'));
  dirs = new BuildDirs(dataDir);
});

afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

function dirOf(id: string): string {
  return path.join(dataDir, 'builds', id);
}

describe('BuildDirs.remove', () => {
  it('removes an accepted build directory with its source', async () => {
    const partial = await dirs.create('b_accepted');
    writeFileSync(partial, 'tar bytes');
    await dirs.commit('b_accepted');

    await dirs.remove('b_accepted');

    expect(existsSync(dirOf('b_accepted'))).toBe(false);
  });

  it('removes a directory an upload left with only source.partial', async () => {
    writeFileSync(await dirs.create('b_partial'), 'half an upload');

    await dirs.remove('b_partial');

    expect(existsSync(dirOf('b_partial'))).toBe(false);
  });

  it('removes whatever else the directory holds, nested folders too', async () => {
    const partial = await dirs.create('b_extra');
    writeFileSync(partial, 'x');
    await dirs.commit('b_extra');
    mkdirSync(path.join(dirOf('b_extra'), 'nested', 'deeper'), { recursive: true });
    writeFileSync(path.join(dirOf('b_extra'), 'nested', 'deeper', 'file'), 'y');

    await dirs.remove('b_extra');

    expect(existsSync(dirOf('b_extra'))).toBe(false);
  });

  it('removes a directory whose source is itself a directory', async () => {
    await dirs.create('b_odd');
    mkdirSync(path.join(dirOf('b_odd'), 'source', 'inside'), { recursive: true });

    await dirs.remove('b_odd');

    expect(existsSync(dirOf('b_odd'))).toBe(false);
  });

  it('accepts a directory that is already gone', async () => {
    await expect(dirs.remove('b_never_created')).resolves.toBeUndefined();
  });
});
