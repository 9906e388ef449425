import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';

/**
 * Carries one guest registry connection (accepted on `<vsock socket>_1025`, with
 * `allowHalfOpen`) to the registry over TCP. `pipe()` gives back-pressure in both directions
 * and forwards half-closes (FIN); a socket only closes once both of its directions are done,
 * and when either side closes or fails the other is destroyed, so the pair ends together.
 */
export function tunnelToTcp(
  guest: Socket,
  target: { host: string; port: number },
  logger: Logger,
): void {
  const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
  let ended = false;
  const endBoth = (err?: Error): void => {
    if (ended) return;
    ended = true;
    if (err !== undefined) {
      logger.warn({ err, target }, 'registry tunnel connection failed');
    }
    guest.destroy();
    upstream.destroy();
  };
  guest.on('error', endBoth);
  upstream.on('error', endBoth);
  guest.on('close', () => {
    endBoth();
  });
  upstream.on('close', () => {
    endBoth();
  });
  guest.pipe(upstream);
  upstream.pipe(guest);
}
