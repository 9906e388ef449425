import { OciError } from '../oci-error.js';

/**
 * Why an upstream could not deliver: the image is not there, the upstream did not answer
 * (refused, timed out, 5xx), it refused the credentials, it limits the rate, or it sent
 * something the mirror will not pass on (a wrong digest, an unsupported manifest).
 */
export type UpstreamFailure =
  'not_found' | 'unreachable' | 'unauthorized' | 'rate_limited' | 'invalid';

/** A failed upstream request, named by upstream, repository and reference. */
export class UpstreamError extends Error {
  readonly failure: UpstreamFailure;
  readonly upstream: string;
  readonly repository: string;
  readonly reference: string;

  constructor(
    failure: UpstreamFailure,
    target: { upstream: string; repository: string; reference: string },
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamError';
    this.failure = failure;
    this.upstream = target.upstream;
    this.repository = target.repository;
    this.reference = target.reference;
  }

  /**
   * The answer to the registry's client. The message names the image and the cause; `detail`
   * carries them as fields (`cause`: not_found / unreachable / unauthorized / …) for clients
   * that map them. An upstream's refusal is 403 DENIED, never 401: a 401 would make the client
   * retry its own (valid) credentials against Kiln.
   */
  toOciError(kind: 'manifest' | 'blob'): OciError {
    const detail = {
      upstream: this.upstream,
      repository: this.repository,
      reference: this.reference,
      cause: this.failure,
    };
    const options = { detail, cause: this };
    switch (this.failure) {
      case 'not_found':
        return new OciError(
          kind === 'manifest' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN',
          this.message,
          options,
        );
      case 'unauthorized':
        return new OciError('DENIED', this.message, options);
      case 'rate_limited':
        return new OciError('TOOMANYREQUESTS', this.message, options);
      case 'unreachable':
        return new OciError('UNKNOWN', this.message, { ...options, status: 502 });
      case 'invalid':
        return new OciError(
          kind === 'manifest' ? 'MANIFEST_INVALID' : 'DIGEST_INVALID',
          this.message,
          {
            ...options,
            status: 502,
          },
        );
    }
  }
}
