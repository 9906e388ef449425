/**
 * Rewrites the checksum of the 512-byte tar header at `offset` of `archive` after a test
 * edited the header (ustar: the sum of the header's bytes with the checksum field as spaces,
 * six octal digits, NUL, space). Returns `archive`.
 */
export function resealTarHeader(archive: Buffer, offset = 0): Buffer {
  const h = archive.subarray(offset, offset + 512);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return archive;
}
