import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_NODE_IMAGE_TAG, testNodeImageLayout } from './test-node-image.js';
import { npmAppFiles, startTestNpmRegistry, type TestNpmRegistry } from './verdaccio.js';

const execFileAsync = promisify(execFile);

// The upstreams that the mirror and egress suites build against are real servers; these
// checks prove the fixtures themselves before any VM depends on them.
describe('test fixtures', () => {
  let registry: TestNpmRegistry | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves published packages that npm ci installs from the lockfile alone', async () => {
    registry = await startTestNpmRegistry();
    const left = await registry.publish({
      name: 'kiln-left-pad',
      version: '1.0.0',
      files: { 'index.js': "module.exports = (s) => ' ' + s;\n" },
    });
    const greet = await registry.publish({
      name: 'kiln-greet',
      version: '2.1.0',
      files: { 'index.js': "module.exports = 'hello from kiln-greet';\n" },
    });
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-npm-app-'));
    for (const [name, content] of Object.entries(npmAppFiles(registry.url, [left, greet]))) {
      await writeFile(path.join(dir, name), content);
    }
    await execFileAsync('npm', ['ci', '--no-audit', '--no-fund'], {
      cwd: dir,
      env: { ...process.env, npm_config_cache: path.join(dir, '.npm-cache') },
    });
    const installed = await readFile(path.join(dir, 'node_modules/kiln-greet/index.js'), 'utf8');
    expect(installed).toContain('hello from kiln-greet');
  });

  it('stops the registry process on close', async () => {
    registry = await startTestNpmRegistry();
    const { pid } = registry;
    await registry.close();
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('builds the node image stand-in as an index of linux/amd64 and linux/arm64', async () => {
    const layout = await testNodeImageLayout();
    const top = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    const entry = top.manifests.find(
      (m) => m.annotations?.['org.opencontainers.image.ref.name'] === TEST_NODE_IMAGE_TAG,
    );
    expect(entry).toBeDefined();
    const blob = path.join(layout, 'blobs', ...entry!.digest.split(':'));
    const index = JSON.parse(await readFile(blob, 'utf8')) as {
      mediaType: string;
      manifests: { platform: { os: string; architecture: string } }[];
    };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`)).toEqual([
      'linux/amd64',
      'linux/arm64',
    ]);
  }, 900_000);
});
