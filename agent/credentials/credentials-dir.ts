import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type BuildkitGcLimits,
  renderAuthJson,
  renderBuildkitdToml,
  renderRegistriesConf,
} from './registry-config-files.js';
import type { BuildJob } from '../../common/protocol/build-job.js';
import type { EngineCredentials } from '../engines/build-engine.js';

export interface CredentialsDir extends EngineCredentials {
  dir: string;
  /** Removes every file. Safe to call twice. */
  dispose(): Promise<void>;
}

/**
 * Writes the registry token and the build secrets for the engine into a fresh directory under
 * `baseDir`, which must be memory-backed (the guest's /run tmpfs): directory 0700, files 0600,
 * readable by root (the engine) alone. Nothing here ever reaches a disk or a layer.
 */
export async function createCredentialsDir(
  baseDir: string,
  registry: BuildJob['registry'],
  registryToken: string,
  secretIds: readonly string[],
  secretValues: Record<string, string>,
  buildkitGc: BuildkitGcLimits | null = null,
): Promise<CredentialsDir> {
  await mkdir(baseDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(baseDir, 'creds-'));
  await chmod(dir, 0o700);
  const put = async (name: string, content: string): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, content, { mode: 0o600, flag: 'wx' });
    return file;
  };
  const auth = renderAuthJson(registry.host, registryToken);
  const authFile = await put('auth.json', auth);
  const dockerConfigDir = path.join(dir, 'docker');
  await mkdir(dockerConfigDir, { mode: 0o700 });
  await put(path.join('docker', 'config.json'), auth);
  const registriesConf = await put('registries.conf', renderRegistriesConf(registry));
  const buildkitdToml = await put('buildkitd.toml', renderBuildkitdToml(registry, buildkitGc));
  await mkdir(path.join(dir, 'secrets'), { mode: 0o700 });
  const secretFiles: Record<string, string> = {};
  for (const id of secretIds) {
    const value = secretValues[id];
    if (value === undefined) continue;
    secretFiles[id] = await put(path.join('secrets', id), value);
  }
  let disposed = false;
  return {
    dir,
    authFile,
    dockerConfigDir,
    registriesConf,
    buildkitdToml,
    secretFiles,
    async dispose() {
      if (disposed) return;
      disposed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
