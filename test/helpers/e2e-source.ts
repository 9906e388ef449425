import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create as createTar } from 'tar';

/** A source archive written for a test, with the facts a Build records about it. */
export interface TestSource {
  path: string;
  sizeBytes: number;
  sha256: string;
}

/**
 * Writes `files` (relative path → content) into a gzipped tar at `file` (portable headers,
 * regular files only), as a client would upload it.
 */
export async function writeSourceTarball(
  file: string,
  files: Record<string, string>,
): Promise<TestSource> {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'kiln-src-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      const target = path.join(staging, name);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, content);
    }
    await createTar({ file, cwd: staging, gzip: true, portable: true }, Object.keys(files).sort());
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  const bytes = await readFile(file);
  return {
    path: file,
    sizeBytes: (await stat(file)).size,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}
