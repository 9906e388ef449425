import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listBuildContext } from '../../src/cli/build-context.js';
import { packBuildContext } from '../../src/cli/context-archive.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'kiln-ctx-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function tree(files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), content);
  }
}

/** The regular files `.dockerignore` lets through. */
async function sent(ignore: string, files: string[]): Promise<string[]> {
  await tree({ '.dockerignore': ignore, ...Object.fromEntries(files.map((f) => [f, f])) });
  const context = await listBuildContext(root, path.join(root, 'Dockerfile'));
  const regular = new Set(['.dockerignore', ...files]);
  return context.entries.filter((e) => regular.has(e)).sort();
}

async function archiveNames(stream: Readable): Promise<string[]> {
  const names: string[] = [];
  const parser = new Parser({
    onReadEntry: (entry) => {
      names.push(`${entry.type}:${entry.path}`);
      entry.resume();
    },
  });
  await pipeline(stream, createGunzip(), parser as unknown as Writable);
  return names;
}

// The cases are the examples of Docker's documentation (".dockerignore file", Dockerfile
// reference) and the matcher rules it states.
describe('the build context honours .dockerignore as docker does', () => {
  it('*/temp* excludes one level down only; */*/temp* two levels; temp? one character', async () => {
    expect(
      await sent('*/temp*\n*/*/temp*\ntemp?\n', [
        'temp.txt',
        'tempa',
        'tempab',
        'somedir/temporary.txt',
        'somedir/temp/inner.txt',
        'somedir/subdir/temporary.txt',
        'a/b/c/temp.txt',
        'keep.txt',
      ]),
    ).toEqual(['.dockerignore', 'a/b/c/temp.txt', 'keep.txt', 'temp.txt', 'tempab']);
  });

  it('**/*.go matches in every directory, the root included', async () => {
    expect(await sent('**/*.go\n', ['main.go', 'cmd/x/y.go', 'cmd/x/y.txt'])).toEqual([
      '.dockerignore',
      'cmd/x/y.txt',
    ]);
  });

  it('! re-includes, and the last matching line wins', async () => {
    expect(
      await sent('*.md\n!README*.md\nREADME-secret.md\n', [
        'CHANGES.md',
        'README.md',
        'README-x.md',
        'README-secret.md',
      ]),
    ).toEqual(['.dockerignore', 'README-x.md', 'README.md']);
  });

  it('an exception re-includes a file inside an excluded directory', async () => {
    expect(
      await sent('node_modules\n!node_modules/keep/index.js\n', [
        'node_modules/a/index.js',
        'node_modules/keep/index.js',
        'node_modules/keep/other.js',
        'src/node_modules/x.js',
      ]),
    ).toEqual(['.dockerignore', 'node_modules/keep/index.js', 'src/node_modules/x.js']);
  });

  it('a leading / is the context root; a plain name matches only at the root', async () => {
    expect(
      await sent('/build\nsecret.txt\n# comment\n  \n', [
        'build/out.bin',
        'src/build/kept.ts',
        'secret.txt',
        'src/secret.txt',
      ]),
    ).toEqual(['.dockerignore', 'src/build/kept.ts', 'src/secret.txt']);
  });

  it('may exclude the Dockerfile and .dockerignore themselves', async () => {
    expect(await sent('Dockerfile\n.dockerignore\n', ['Dockerfile', 'app.txt'])).toEqual([
      'app.txt',
    ]);
  });

  it('prefers <Dockerfile>.dockerignore next to the Dockerfile over the root one', async () => {
    await tree({
      '.dockerignore': 'a.txt\n',
      'docker/web.Dockerfile': 'FROM busybox\n',
      'docker/web.Dockerfile.dockerignore': 'b.txt\n',
      'a.txt': 'a',
      'b.txt': 'b',
    });
    const context = await listBuildContext(root, path.join(root, 'docker', 'web.Dockerfile'));
    expect(context.ignoreFile).toBe('docker/web.Dockerfile.dockerignore');
    expect(context.entries).toContain('a.txt');
    expect(context.entries).not.toContain('b.txt');
  });

  it('packs exactly the listed entries into a gzipped tar, links kept as links', async () => {
    await tree({ '.dockerignore': 'logs\n', 'src/app.js': 'x', 'logs/a.log': 'y' });
    await symlink('src/app.js', path.join(root, 'link'));
    const context = await listBuildContext(root, null);
    let counted = 0;
    const names = await archiveNames(
      packBuildContext(context, (n) => {
        counted += n;
      }),
    );
    expect(names.sort()).toEqual(
      ['File:.dockerignore', 'SymbolicLink:link', 'Directory:src/', 'File:src/app.js'].sort(),
    );
    // The size estimate the progress bar uses is the uncompressed stream's size, to the block.
    expect(counted).toBeGreaterThanOrEqual(context.tarBytes - 1024);
    expect(counted).toBeLessThanOrEqual(context.tarBytes + 10240);
  });

  it('packs an empty context as an empty archive', async () => {
    const context = await listBuildContext(root, null);
    expect(context.entries).toEqual([]);
    expect(await archiveNames(packBuildContext(context, () => undefined))).toEqual([]);
  });
});
