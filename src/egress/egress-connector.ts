import { connect, type Socket } from 'node:net';

/**
 * Opens a TCP connection to an address the policy has already judged. A port so tests wrap
 * it with a guard that fails on any non-loopback address; the returned socket reports
 * `connect` or `error` like one from `net.connect`.
 */
export type EgressConnector = (to: {
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}) => Socket;

/**
 * `net.connect` to the IP literal itself: with an IP as `host`, Node skips its lookup step,
 * so the connection goes to exactly the address that was checked (a second resolution is
 * what DNS rebinding would exploit). `allowHalfOpen` lets a tunnel forward each side's FIN.
 */
export const systemConnector: EgressConnector = (to) =>
  connect({ host: to.address, port: to.port, family: to.family, allowHalfOpen: true });
