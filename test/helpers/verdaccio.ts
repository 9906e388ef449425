import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { create as createTar } from 'tar';

const SERVER_SCRIPT = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'verdaccio-server.mjs',
);

/** A real npm registry (Verdaccio) on 127.0.0.1, with no uplinks: it serves only what a test publishes. */
export interface TestNpmRegistry {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  readonly port: number;
  /** The Verdaccio process (leader of its own process group). */
  readonly pid: number;
  /** Publishes one package version; resolves to what a lockfile records for it. */
  publish(pkg: TestNpmPackage): Promise<PublishedPackage>;
  /** Kills the process group and removes the storage. Safe to call twice. */
  close(): Promise<void>;
}

export interface TestNpmPackage {
  name: string;
  version: string;
  /** Files of the package (relative path → content); `package.json` is written from name/version. */
  files: Record<string, string>;
}

export interface PublishedPackage {
  name: string;
  version: string;
  /** Tarball URL as the registry serves it. */
  resolved: string;
  /** `sha512-…` Subresource Integrity of the tarball. */
  integrity: string;
}

/** Starts Verdaccio with a temp storage; anonymous publish, no uplinks (nothing leaves the machine). */
export async function startTestNpmRegistry(): Promise<TestNpmRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-verdaccio-'));
  const config = path.join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      `storage: ${path.join(dir, 'storage')}`,
      'auth:',
      `  htpasswd: { file: ${path.join(dir, 'htpasswd')}, max_users: -1 }`,
      'uplinks: {}',
      'packages:',
      "  '**': { access: $all, publish: $all, unpublish: $all }",
      'log: { type: stdout, format: json, level: warn }',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [SERVER_SCRIPT, config], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('verdaccio did not start');
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => {
      reject(new Error(`verdaccio did not listen: ${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      reject(new Error(`verdaccio exited (${code}): ${stderr}`));
    });
    lines.on('line', (line) => {
      const match = /^\{"port":(\d+)\}$/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve(Number(match[1]));
    });
  });
  const url = `http://127.0.0.1:${port}/`;
  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    pid,
    publish: (pkg) => publish(url, pkg),
    close: () =>
      (closed ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          process.kill(-pid, 'SIGKILL');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      })()),
  };
}

/** What `npm publish` sends: the package document with the tarball attached (npm registry API). */
async function publish(registryUrl: string, pkg: TestNpmPackage): Promise<PublishedPackage> {
  const manifest = { name: pkg.name, version: pkg.version, main: 'index.js' };
  const tarball = await packTarball({
    ...pkg.files,
    'package.json': JSON.stringify(manifest, null, 2),
  });
  const fileName = `${pkg.name.replace(/^@[^/]+\//, '')}-${pkg.version}.tgz`;
  const resolved = `${registryUrl}${pkg.name}/-/${fileName}`;
  const integrity = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
  const body = {
    _id: pkg.name,
    name: pkg.name,
    'dist-tags': { latest: pkg.version },
    versions: {
      [pkg.version]: {
        ...manifest,
        _id: `${pkg.name}@${pkg.version}`,
        dist: {
          integrity,
          shasum: createHash('sha1').update(tarball).digest('hex'),
          tarball: resolved,
        },
      },
    },
    _attachments: {
      [fileName]: {
        content_type: 'application/octet-stream',
        data: tarball.toString('base64'),
        length: tarball.length,
      },
    },
  };
  const response = await fetch(`${registryUrl}${encodeURIComponent(pkg.name)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    throw new Error(
      `publish ${pkg.name}@${pkg.version}: ${response.status} ${await response.text()}`,
    );
  }
  return { name: pkg.name, version: pkg.version, resolved, integrity };
}

/** A gzipped tarball with every file under `package/`, as npm packs it. */
async function packTarball(files: Record<string, string>): Promise<Buffer> {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'kiln-npm-pack-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      const target = path.join(staging, 'package', name);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, content);
    }
    const file = path.join(staging, 'package.tgz');
    await createTar({ file, cwd: staging, gzip: true, portable: true }, ['package']);
    return await readFile(file);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The files of an app that `npm ci` installs `packages` into from `registryUrl`: package.json,
 * a lockfile (v3) that pins each package's tarball and integrity, and an .npmrc naming the
 * registry.
 */
export function npmAppFiles(
  registryUrl: string,
  packages: readonly PublishedPackage[],
): Record<string, string> {
  const dependencies = Object.fromEntries(packages.map((p) => [p.name, p.version]));
  const lock = {
    name: 'kiln-test-app',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'kiln-test-app', version: '1.0.0', dependencies },
      ...Object.fromEntries(
        packages.map((p) => [
          `node_modules/${p.name}`,
          { version: p.version, resolved: p.resolved, integrity: p.integrity },
        ]),
      ),
    },
  };
  return {
    'package.json': JSON.stringify(
      { name: 'kiln-test-app', version: '1.0.0', private: true, dependencies },
      null,
      2,
    ),
    'package-lock.json': JSON.stringify(lock, null, 2),
    '.npmrc': `registry=${registryUrl}\n`,
  };
}
