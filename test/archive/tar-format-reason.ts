import { isTarFormatError } from '../../common/archive/tar-format-error.js';

/** The TarFormatError reason `fn` throws, another error's stand-in text, or undefined. */
export function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isTarFormatError(err) ? err.reason : 'not a TarFormatError';
  }
  return undefined;
}
