import { createHash, type Hash } from 'node:crypto';
import { OciError } from './oci-error.js';

/** Digest algorithms the registry accepts (OCI image-spec "Digests": sha256 and sha512). */
export type DigestAlgorithm = 'sha256' | 'sha512';

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `<algorithm>:<hex>` */
  text: string;
}

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/** Parses a digest string, or returns null when it is not a supported, well-formed digest. */
export function tryParseDigest(text: string): ParsedDigest | null {
  const m = /^(sha256|sha512):([a-f0-9]+)$/.exec(text);
  if (!m?.[1] || !m[2]) return null;
  const algorithm = m[1] as DigestAlgorithm;
  if (m[2].length !== HEX_LENGTH[algorithm]) return null;
  return { algorithm, hex: m[2], text };
}

/** Parses a digest or throws DIGEST_INVALID (400). */
export function parseDigest(text: string): ParsedDigest {
  const parsed = tryParseDigest(text);
  if (!parsed) {
    throw new OciError('DIGEST_INVALID', 'digest is not a supported, well-formed digest', {
      detail: { digest: text },
    });
  }
  return parsed;
}

/** True for strings that look like a digest (any algorithm), as opposed to a tag. */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(algorithm: DigestAlgorithm, data: Uint8Array): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
