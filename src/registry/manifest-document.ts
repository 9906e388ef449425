import { tryParseDigest } from './digest.js';
import { OciError } from './oci-error.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

const INDEX_TYPES: ReadonlySet<string> = new Set([OCI_INDEX, DOCKER_LIST]);
const IMAGE_TYPES: ReadonlySet<string> = new Set([OCI_MANIFEST, DOCKER_MANIFEST]);

/** What the registry needs to know about a pushed manifest. */
export interface ManifestDocument {
  mediaType: string;
  /** Blobs that must already be in the repository (config and distributable layers). */
  blobs: string[];
  /** The size each of `blobs` is declared with, by digest. */
  blobSizes: Map<string, number>;
  /** Manifests an index refers to, which must already be in the repository. */
  manifests: string[];
  subjectDigest: string | null;
  /** For the referrers API: `artifactType`, else the config's media type (image manifests). */
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
}

/** Layers that may legally be absent from the registry (image-spec "non-distributable"). */
function isNonDistributable(mediaType: unknown): boolean {
  return (
    typeof mediaType === 'string' &&
    (mediaType.includes('.nondistributable.') || mediaType.includes('.foreign.'))
  );
}

function invalid(message: string): OciError {
  return new OciError('MANIFEST_INVALID', message);
}

/** A descriptor's digest and size, checked. */
function checkedDescriptor(d: unknown, where: string): { digest: string; size: number } {
  if (typeof d !== 'object' || d === null) throw invalid(`${where} is not a descriptor`);
  const { digest, size } = d as Descriptor;
  if (typeof digest !== 'string' || !tryParseDigest(digest)) {
    throw invalid(`${where} has an invalid digest`);
  }
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
    throw invalid(`${where} has an invalid size`);
  }
  return { digest, size };
}

function descriptorDigest(d: unknown, where: string): string {
  return checkedDescriptor(d, where).digest;
}

/**
 * Parses and checks a manifest body (image-spec manifest/index, Docker schema2 manifest/list).
 * The media type comes from the Content-Type header, or from the body's `mediaType`; when both
 * are present they must agree.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ManifestDocument {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw invalid('manifest is not a JSON object');
  }
  const doc = json as Record<string, unknown>;
  const headerType = contentType?.split(';')[0]?.trim();
  const bodyType = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (headerType && bodyType && headerType !== bodyType && headerType !== 'application/json') {
    throw invalid('Content-Type does not match the manifest mediaType');
  }
  let mediaType = bodyType ?? headerType;
  if (mediaType === undefined || mediaType === 'application/json') {
    mediaType = Array.isArray(doc.manifests) ? OCI_INDEX : OCI_MANIFEST;
  }
  if (!INDEX_TYPES.has(mediaType) && !IMAGE_TYPES.has(mediaType)) {
    throw invalid(`unsupported manifest media type ${mediaType}`);
  }

  const blobs: string[] = [];
  const blobSizes = new Map<string, number>();
  const manifests: string[] = [];
  let artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : null;
  if (IMAGE_TYPES.has(mediaType)) {
    if (!Array.isArray(doc.layers)) throw invalid('manifest has no layers array');
    const configDescriptor = checkedDescriptor(doc.config, 'config');
    blobs.push(configDescriptor.digest);
    blobSizes.set(configDescriptor.digest, configDescriptor.size);
    const config = doc.config as Descriptor;
    if (artifactType === null && typeof config.mediaType === 'string') {
      artifactType = config.mediaType;
    }
    (doc.layers as unknown[]).forEach((layer, i) => {
      const { digest, size } = checkedDescriptor(layer, `layers[${i}]`);
      if (!isNonDistributable((layer as Descriptor).mediaType)) {
        blobs.push(digest);
        blobSizes.set(digest, size);
      }
    });
  } else {
    if (!Array.isArray(doc.manifests)) throw invalid('index has no manifests array');
    (doc.manifests as unknown[]).forEach((m, i) => {
      manifests.push(descriptorDigest(m, `manifests[${i}]`));
    });
  }
  const subjectDigest = doc.subject === undefined ? null : descriptorDigest(doc.subject, 'subject');
  let annotations: Record<string, string> | null = null;
  if (typeof doc.annotations === 'object' && doc.annotations !== null) {
    annotations = {};
    for (const [k, v] of Object.entries(doc.annotations)) {
      if (typeof v === 'string') annotations[k] = v;
    }
  }
  return { mediaType, blobs, blobSizes, manifests, subjectDigest, artifactType, annotations };
}
