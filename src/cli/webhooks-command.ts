import { resolveEndpoint } from './cli-config.js';
import { EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { KilnClient, type RemoteWebhookSettings } from './kiln-client.js';
import { parseDuration } from './parse-units.js';

/** `--overlap`: a duration, or 0 for a replaced secret that stops signing at once. */
export function parseOverlap(text: string): number {
  return text.trim() === '0' ? 0 : parseDuration(text);
}

/** What `kiln webhooks rotate-secret` prints: the new secret, and until when the old one signs. */
export function rotationLines(settings: RemoteWebhookSettings): string {
  const until =
    settings.previous_secret_expires_at === null
      ? 'the previous secret no longer signs deliveries'
      : `deliveries carry signatures from both secrets until ${settings.previous_secret_expires_at}; switch your receivers to the new one before then`;
  return `new signing secret: ${settings.signing_secret}\n${until}\n`;
}

/**
 * `kiln webhooks rotate-secret [--overlap D] [--output json]`
 * (POST /webhook-settings/rotate-secret): a new signing secret for the tenant's webhooks.
 */
export async function runWebhooksRotateSecret(
  opts: { overlap?: number; output?: 'json' | 'text' },
  io: CliIo,
): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  const settings = await client.rotateWebhookSecret(opts.overlap);
  io.stdout(opts.output === 'json' ? `${JSON.stringify(settings)}\n` : rotationLines(settings));
  return EXIT.ready;
}
