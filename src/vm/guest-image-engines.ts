import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BUILD_ENGINE_NAMES, type BuildEngineName } from '../builds/build.js';

/**
 * The build engines the guest image in `imageDir` carries, best first, from the `engines` list
 * its recipe wrote into image.json (scripts/build-image.sh: `["buildkit","buildah"]` when it
 * was given BuildKit's binaries, `["buildah"]` otherwise). Undefined when the directory has no
 * readable image.json (an image made some other way): builds may then ask for any engine, and
 * the guest reports one it lacks.
 */
export async function readGuestImageEngines(
  imageDir: string,
): Promise<readonly BuildEngineName[] | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(imageDir, 'image.json'), 'utf8');
  } catch {
    return undefined;
  }
  let listed: unknown;
  try {
    listed = (JSON.parse(text) as { engines?: unknown }).engines;
  } catch {
    return undefined;
  }
  if (!Array.isArray(listed)) return undefined;
  return BUILD_ENGINE_NAMES.filter((name) => listed.includes(name)).sort(
    (a, b) => listed.indexOf(a) - listed.indexOf(b),
  );
}
