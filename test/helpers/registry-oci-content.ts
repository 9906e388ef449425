import { createHash } from 'node:crypto';

/** A blob with its sha256 digest. */
export interface TestBlob {
  bytes: Buffer;
  digest: string;
}

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function sha512Digest(bytes: Buffer): string {
  return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
}

export function testBlob(text: string): TestBlob {
  const bytes = Buffer.from(text);
  return { bytes, digest: sha256Digest(bytes) };
}

/** An OCI image manifest over `config` and `layers`, with optional subject/artifactType. */
export function imageManifest(input: {
  config: TestBlob;
  layers: TestBlob[];
  configMediaType?: string;
  artifactType?: string;
  subject?: { digest: string; size: number; mediaType?: string };
  annotations?: Record<string, string>;
}): Buffer {
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: input.configMediaType ?? 'application/vnd.oci.image.config.v1+json',
      digest: input.config.digest,
      size: input.config.bytes.length,
    },
    layers: input.layers.map((l) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      digest: l.digest,
      size: l.bytes.length,
    })),
  };
  if (input.artifactType !== undefined) doc.artifactType = input.artifactType;
  if (input.subject !== undefined) {
    doc.subject = {
      mediaType: input.subject.mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
      digest: input.subject.digest,
      size: input.subject.size,
    };
  }
  if (input.annotations !== undefined) doc.annotations = input.annotations;
  return Buffer.from(JSON.stringify(doc));
}
