/** Limits a source archive must keep (config.builds.*, passed to the guest in build.json). */
export interface ArchiveLimits {
  maxUnpackedBytes: number;
  maxEntries: number;
  maxPathBytes: number;
}

/** Largest pax or GNU long-name header body accepted (names are limited far below this). */
export const MAX_METADATA_BYTES = 1024 * 1024;

/** Header, metadata-header and padding blocks one entry may add on top of its content. */
const TAR_OVERHEAD_PER_ENTRY = 3 * 512;

/**
 * Most decompressed bytes an archive within `limits` can hold: its content, the per-entry
 * headers and padding, and one metadata header of slack. Decompression stops beyond it, so a
 * compression bomb (or an endless run of zero blocks) ends early, at the same byte on the host
 * and in the guest.
 */
export function maxTarStreamBytes(limits: ArchiveLimits): number {
  return (
    limits.maxUnpackedBytes + (limits.maxEntries + 2) * TAR_OVERHEAD_PER_ENTRY + MAX_METADATA_BYTES
  );
}
