import { normalizeHost } from '../egress/normalize-host.js';
import { AppError } from '../errors/app-error.js';

const MAX_URL_LENGTH = 2048;

/**
 * A webhook URL as a build or a tenant's settings give it: absolute `http:` or `https:`, a
 * host the egress policy can judge, no credentials or fragment, at most 2048 characters.
 * Whether its address may be reached is decided when it is sent (DNS may change), by the
 * same policy as the egress proxy. Throws INVALID_WEBHOOK_URL.
 */
export function parseWebhookUrl(text: string): string {
  const refuse = (why: string) =>
    new AppError('INVALID_WEBHOOK_URL', `webhook_url: ${why}`, {
      details: { field: 'webhook_url' },
    });
  if (text.length > MAX_URL_LENGTH) throw refuse(`longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refuse('not an absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse('must be http or https');
  if (url.username !== '' || url.password !== '') throw refuse('must not carry credentials');
  if (url.hash !== '') throw refuse('must not have a fragment');
  if (normalizeHost(url.hostname) === undefined) throw refuse('has an invalid host');
  return url.toString();
}
