import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { create as createTar } from 'tar';

/** A tiny OCI image layout written by hand (image-spec "OCI Image Layout"), no network. */
export interface OciLayout {
  dir: string;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function writeBlob(dir: string, bytes: Buffer): Promise<string> {
  const hex = sha256(bytes);
  await writeFile(path.join(dir, 'blobs', 'sha256', hex), bytes);
  return `sha256:${hex}`;
}

/**
 * Writes an OCI layout at `dir` holding one single-layer image tagged `ref`: the layer is a
 * tar (gzip unless `uncompressed`) of `files`.
 */
export async function writeOciLayout(
  dir: string,
  files: Record<string, Buffer | string>,
  options: { ref?: string; uncompressed?: boolean } = {},
): Promise<OciLayout> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const staging = await mkdtemp(path.join(path.dirname(dir), 'layer-src-'));
  const layerFile = path.join(staging, '..', `${path.basename(staging)}.tar`);
  try {
    for (const [name, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(staging, name)), { recursive: true });
      await writeFile(path.join(staging, name), content);
    }
    await createTar(
      {
        file: layerFile,
        cwd: staging,
        gzip: options.uncompressed !== true,
        portable: true,
        mtime: new Date(0),
      },
      Object.keys(files),
    );
    const layer = await readFile(layerFile);
    const layerDigest = await writeBlob(dir, layer);
    const diffId =
      options.uncompressed === true ? layerDigest : `sha256:${sha256(gunzipSync(layer))}`;
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/hello'] },
        rootfs: { type: 'layers', diff_ids: [diffId] },
      }),
    );
    const configDigest = await writeBlob(dir, config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: configDigest,
          size: config.length,
        },
        layers: [
          {
            mediaType:
              options.uncompressed === true
                ? 'application/vnd.oci.image.layer.v1.tar'
                : 'application/vnd.oci.image.layer.v1.tar+gzip',
            digest: layerDigest,
            size: layer.length,
          },
        ],
      }),
    );
    const manifestDigest = await writeBlob(dir, manifest);
    await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      path.join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: manifestDigest,
            size: manifest.length,
            annotations: { 'org.opencontainers.image.ref.name': options.ref ?? 'latest' },
          },
        ],
      }),
    );
    return { dir, manifestDigest, configDigest, layerDigest };
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(layerFile, { force: true });
  }
}
