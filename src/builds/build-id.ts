import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** Build ids: `b_` + 20 lowercase RFC 4648 base32 characters (100 random bits). */
export const BUILD_ID_PATTERN = /^b_[a-z2-7]{20}$/;

export function newBuildId(): string {
  const bytes = randomBytes(20);
  let out = 'b_';
  for (const b of bytes) out += ALPHABET[b & 31] ?? 'a';
  return out;
}
