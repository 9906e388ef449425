import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BuildFailure } from '../../common/errors/build-failure.js';
import type { BuildJob } from '../../common/protocol/build-job.js';
import type { UnpackedEntry } from '../source/unpack-source.js';

export interface BuildContext {
  /** Absolute path of the build context directory. */
  contextDir: string;
  /** Context path relative to the unpacked source root ('' = root). */
  contextPrefix: string;
  /** Absolute path of the Dockerfile the engine reads. */
  dockerfile: string;
}

/**
 * Applies `contextDir`, `dockerfilePath` or the inline Dockerfile (written to a file in
 * `tempDir`, outside the context, so it never lands in the image) to the unpacked source.
 * Paths are checked against the unpacked tree: the context must be a directory and the
 * Dockerfile a regular file, reached without symlinks and without `..`.
 */
export async function resolveBuildContext(
  sourceRoot: string,
  entries: readonly UnpackedEntry[],
  job: Pick<BuildJob, 'contextDir' | 'dockerfilePath' | 'dockerfile'>,
  tempDir: string,
): Promise<BuildContext> {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const contextParts = relativeParts(job.contextDir, 'context_dir');
  const contextPrefix = contextParts.join('/');
  if (contextPrefix !== '' && byPath.get(contextPrefix)?.type !== 'dir') {
    throw new BuildFailure(
      'invalid_source',
      `context_dir "${job.contextDir}" is not a directory in the source`,
    );
  }
  const contextDir = path.join(sourceRoot, ...contextParts);
  if (job.dockerfile !== null) {
    const dockerfile = path.join(tempDir, 'Dockerfile.inline');
    await writeFile(dockerfile, job.dockerfile, { mode: 0o644 });
    return { contextDir, contextPrefix, dockerfile };
  }
  const dfParts = relativeParts(
    job.dockerfilePath === '' ? 'Dockerfile' : job.dockerfilePath,
    'dockerfile_path',
  );
  const dfPath = [...contextParts, ...dfParts].join('/');
  if (byPath.get(dfPath)?.type !== 'file') {
    throw new BuildFailure(
      'invalid_source',
      `dockerfile_path "${job.dockerfilePath || 'Dockerfile'}" is not a file in the context`,
    );
  }
  return {
    contextDir,
    contextPrefix,
    dockerfile: path.join(sourceRoot, ...contextParts, ...dfParts),
  };
}

function relativeParts(value: string, field: string): string[] {
  if (value.startsWith('/') || value.includes('\0')) {
    throw new BuildFailure('invalid_source', `${field} must be a relative path`);
  }
  const parts = value.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new BuildFailure('invalid_source', `${field} must not contain ".."`);
  }
  return parts;
}
