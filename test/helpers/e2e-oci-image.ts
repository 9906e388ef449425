import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { list as listTar } from 'tar';

const execFileAsync = promisify(execFile);

/** An image pulled back from the registry with skopeo, opened. */
export interface PulledImage {
  /** Manifest digest as the registry serves it (`skopeo inspect`'s Digest). */
  digest: string;
  config: {
    config?: {
      Env?: string[];
      Cmd?: string[];
      Entrypoint?: string[];
      Labels?: Record<string, string>;
    };
    history?: unknown[];
  };
  /** Per layer (base first): path (without leading "./" or "/") → content (regular files). */
  layers: Map<string, Buffer>[];
  /** Every layer blob, decompressed, for byte searches. */
  layerBytes: Buffer[];
}

/**
 * Pulls `ref` (host:port/repo:tag) with `skopeo copy` into a temp OCI layout (plain HTTP,
 * `kiln:<token>` as credentials) and reads its manifest, config and layers.
 */
export async function pullImage(ref: string, token: string): Promise<PulledImage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-pull-'));
  try {
    const creds = `kiln:${token}`;
    const { stdout } = await execFileAsync('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--creds',
      creds,
      `docker://${ref}`,
    ]);
    const digest = (JSON.parse(stdout) as { Digest: string }).Digest;
    await execFileAsync('skopeo', [
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      '--src-creds',
      creds,
      `docker://${ref}`,
      `oci:${dir}/layout:img`,
    ]);
    const blob = (d: string) => path.join(dir, 'layout', 'blobs', ...d.split(':'));
    const index = JSON.parse(await readFile(path.join(dir, 'layout', 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    const config = JSON.parse(
      await readFile(blob(manifest.config.digest), 'utf8'),
    ) as PulledImage['config'];
    const layers: Map<string, Buffer>[] = [];
    const layerBytes: Buffer[] = [];
    for (const layer of manifest.layers) {
      const raw = await readFile(blob(layer.digest));
      layerBytes.push(raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw);
      const files = new Map<string, Buffer>();
      await listTar({
        file: blob(layer.digest),
        onReadEntry: (entry) => {
          const name = entry.path.replace(/^\.?\//, '');
          if (entry.type !== 'File') {
            entry.resume();
            return;
          }
          const chunks: Buffer[] = [];
          entry.on('data', (c: Buffer) => chunks.push(c));
          entry.on('end', () => files.set(name, Buffer.concat(chunks)));
        },
      });
      layers.push(files);
    }
    return { digest, config, layers, layerBytes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The file as the image's merged filesystem shows it (the topmost layer holding it). */
export function imageFile(image: PulledImage, name: string): string | undefined {
  for (let i = image.layers.length - 1; i >= 0; i--) {
    const content = image.layers[i]?.get(name);
    if (content) return content.toString('utf8');
  }
  return undefined;
}
