import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { get } from 'node:http';
import path from 'node:path';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Blobs fetched at once (the mirror's prefetch takes 4 of an image at once). */
const AT_ONCE = 4;

interface Descriptor {
  digest: string;
  size: number;
  platform?: { architecture?: string };
}

async function manifest(base: string, repo: string, reference: string): Promise<unknown> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${reference}`, {
    headers: { accept: ACCEPT },
  });
  if (!res.ok) throw new Error(`manifest ${repo}:${reference}: HTTP ${res.status}`);
  return res.json();
}

/** GETs one blob over node:http, hashing it and writing it to `file`, then fsyncs the file. */
async function storeBlob(base: string, repo: string, digest: string, file: string): Promise<void> {
  const handle = await open(file, 'wx');
  try {
    const hash = createHash('sha256');
    await new Promise<void>((resolve, reject) => {
      get(`${base}/v2/${repo}/blobs/${digest}`, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`blob ${digest}: HTTP ${res.statusCode}`));
          return;
        }
        const writes: Promise<unknown>[] = [];
        let offset = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          writes.push(handle.write(chunk, 0, chunk.length, offset));
          offset += chunk.length;
        });
        res.on('error', reject);
        res.on('end', () => {
          Promise.all(writes).then(() => {
            resolve();
          }, reject);
        });
      }).on('error', reject);
    });
    if (`sha256:${hash.digest('hex')}` !== digest) throw new Error(`blob ${digest}: bad digest`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The work a verifying, storing mirror cannot avoid on a cold pull, done by a bare Node loop
 * with nothing else: the amd64 image's config and layers fetched from `base` (4 at a time),
 * hashed, written to `dir` and fsynced. Run alongside a direct pull it gives the floor of a
 * cold pull through such a mirror on this machine (the same bytes received, hashed and stored
 * once more, on the same cores and disk). The files are removed afterwards.
 */
export async function storeImageFloor(
  base: string,
  repo: string,
  tag: string,
  dir: string,
): Promise<void> {
  const index = (await manifest(base, repo, tag)) as { manifests?: Descriptor[] };
  const amd64 = index.manifests?.find((m) => m.platform?.architecture === 'amd64');
  if (amd64 === undefined) throw new Error(`${repo}:${tag} has no amd64 manifest`);
  const image = (await manifest(base, repo, amd64.digest)) as {
    config: Descriptor;
    layers: Descriptor[];
  };
  const queue = [image.config, ...image.layers].map((d) => d.digest);
  const files: string[] = [];
  const worker = async () => {
    for (let digest = queue.shift(); digest !== undefined; digest = queue.shift()) {
      const file = path.join(dir, `floor-${digest.slice(7, 23)}`);
      files.push(file);
      await storeBlob(base, repo, digest, file);
    }
  };
  try {
    await Promise.all(Array.from({ length: AT_ONCE }, worker));
  } finally {
    await Promise.all(files.map((f) => rm(f, { force: true })));
  }
}
