import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';

/**
 * Carries one guest connection (accepted on `<vsock socket>_1025` for the registry or `_1026`
 * for the egress proxy, with `allowHalfOpen`) to the registry over TCP or to the build's
 * egress proxy on its Unix socket. `pipe()` gives back-pressure in both directions
 * and forwards half-closes (FIN); a socket only closes once both of its directions are done,
 * and when either side closes or fails the other is destroyed, so the pair ends together.
 */
export function tunnelVsockConnection(
  guest: Socket,
  target: { host: string; port: number } | { path: string },
  logger: Logger,
): void {
  const upstream =
    'path' in target
      ? connect({ path: target.path, allowHalfOpen: true })
      : connect({ host: target.host, port: target.port, allowHalfOpen: true });
  let ended = false;
  const endBoth = (err?: Error): void => {
    if (ended) return;
    ended = true;
    if (err !== undefined) {
      logger.warn({ err, target }, 'vsock tunnel connection failed');
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
