import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { create as createTar } from 'tar';

/** An OCI layout holding one multi-platform image: an index over one manifest per platform. */
export interface OciIndexLayout {
  dir: string;
  indexDigest: string;
  /** Manifest digest and layer digest per architecture. */
  platforms: Record<string, { manifestDigest: string; layerDigest: string; configDigest: string }>;
}

async function writeBlob(dir: string, bytes: Buffer): Promise<string> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(path.join(dir, 'blobs', 'sha256', hex), bytes);
  return `sha256:${hex}`;
}

/**
 * Writes an OCI layout at `dir` whose `ref` is an image index over `architectures` (linux),
 * each a single uncompressed layer holding `/arch` with the architecture's name.
 */
export async function writeOciIndexLayout(
  dir: string,
  architectures: string[],
  ref = 'latest',
): Promise<OciIndexLayout> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const platforms: OciIndexLayout['platforms'] = {};
  const descriptors: unknown[] = [];
  for (const arch of architectures) {
    const staging = await mkdtemp(path.join(path.dirname(dir), `layer-${arch}-`));
    const tarFile = `${staging}.tar`;
    try {
      await writeFile(path.join(staging, 'arch'), `${arch}\n`);
      await createTar({ file: tarFile, cwd: staging, portable: true, mtime: new Date(0) }, [
        'arch',
      ]);
      const layer = await readFile(tarFile);
      const layerDigest = await writeBlob(dir, layer);
      const config = Buffer.from(
        JSON.stringify({
          architecture: arch,
          os: 'linux',
          config: { Cmd: ['/bin/true'] },
          rootfs: { type: 'layers', diff_ids: [layerDigest] },
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
              mediaType: 'application/vnd.oci.image.layer.v1.tar',
              digest: layerDigest,
              size: layer.length,
            },
          ],
        }),
      );
      const manifestDigest = await writeBlob(dir, manifest);
      platforms[arch] = { manifestDigest, layerDigest, configDigest };
      descriptors.push({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: manifestDigest,
        size: manifest.length,
        platform: { architecture: arch, os: 'linux' },
      });
    } finally {
      await rm(staging, { recursive: true, force: true });
      await rm(tarFile, { force: true });
    }
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: descriptors,
    }),
  );
  const indexDigest = await writeBlob(dir, index);
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          digest: indexDigest,
          size: index.length,
          annotations: { 'org.opencontainers.image.ref.name': ref },
        },
      ],
    }),
  );
  return { dir, indexDigest, platforms };
}
