import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import type { BuildEngine } from './engines/build-engine.js';
import { BuildahEngine } from './engines/buildah-engine.js';
import { BuildKitEngine } from './engines/buildkit-engine.js';

async function findExecutable(name: string, searchPath: string): Promise<string | null> {
  for (const dir of searchPath.split(':')) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The engines present in this image, best first: BuildKit when its binaries were supplied to
 * the image recipe (buildctl and buildkitd, with Debian's rootlesskit beside them), then Buildah
 * (always in the image).
 */
export async function detectEngines(searchPath = process.env.PATH ?? ''): Promise<BuildEngine[]> {
  const engines: BuildEngine[] = [];
  const buildctl = await findExecutable('buildctl', searchPath);
  const buildkitd = await findExecutable('buildkitd', searchPath);
  const rootlesskit = await findExecutable('rootlesskit', searchPath);
  if (buildctl && buildkitd && rootlesskit) {
    engines.push(
      new BuildKitEngine({
        buildctlPath: buildctl,
        buildkitdPath: buildkitd,
        rootlesskitPath: rootlesskit,
      }),
    );
  }
  const buildah = await findExecutable('buildah', searchPath);
  if (buildah) engines.push(new BuildahEngine({ buildahPath: buildah }));
  return engines;
}
