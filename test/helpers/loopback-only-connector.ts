import { systemConnector, type EgressConnector } from '../../src/egress/egress-connector.js';

/**
 * The proxy's outbound connector for tests: connects only to 127.0.0.1 or ::1. Asked for any
 * other address it records the request and throws instead of connecting, so no packet leaves
 * the machine; `violations` must stay empty (tests check it in afterEach) and `calls` shows
 * every address the proxy tried.
 */
export class LoopbackOnlyConnector {
  readonly calls: { address: string; family: 4 | 6; port: number }[] = [];
  readonly violations: string[] = [];

  readonly connect: EgressConnector = (to) => {
    this.calls.push({ ...to });
    if (to.address !== '127.0.0.1' && to.address !== '::1') {
      this.violations.push(`${to.address}:${to.port}`);
      throw new Error(`test guard: the proxy tried to connect to ${to.address}:${to.port}`);
    }
    return systemConnector(to);
  };
}
