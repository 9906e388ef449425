import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { connectVia } from './proxy-client.js';
import { parseEgressConfig, type EgressConfig } from '../../src/config/egress-config.js';
import { createBuildEgressProxy } from '../../src/egress/create-build-egress-proxy.js';
import type { EgressDenial } from '../../src/egress/egress-denial.js';
import type { EgressProxy } from '../../src/egress/egress-proxy.js';
import { isAppError } from '../../src/errors/app-error.js';
import { LoopbackOnlyConnector } from '../helpers/loopback-only-connector.js';
import { ManualClock } from '../helpers/manual-clock.js';

function config(env: Record<string, string>): EgressConfig {
  const parsed = parseEgressConfig(env);
  if (parsed.config === undefined) throw new Error(parsed.problems.join('\n'));
  return parsed.config;
}

const proxies: EgressProxy[] = [];
const guard = new LoopbackOnlyConnector();

afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
  expect(guard.violations).toEqual([]);
});

function create(
  cfg: EgressConfig,
  allowedHosts: string[] | undefined,
  denials: EgressDenial[] = [],
) {
  const time = new ManualClock();
  const proxy = createBuildEgressProxy({
    config: cfg,
    allowedHosts,
    clock: time,
    scheduler: time,
    logger: pino({ level: 'silent' }),
    onDenied: (d) => denials.push(d),
    resolve: (name) =>
      Promise.resolve(name === 'db.corp.test' ? [{ address: '10.0.0.5', family: 4 }] : []),
    connect: guard.connect,
    hostAddresses: ['8.8.4.4'],
  });
  proxies.push(proxy);
  return proxy;
}

describe('createBuildEgressProxy', () => {
  it("builds one build's proxy from the operator's settings", async () => {
    const denials: EgressDenial[] = [];
    const proxy = create(
      config({ KILN_EGRESS_ALLOWED_PORTS: '443', KILN_EGRESS_DENIED_CIDRS: '93.184.216.0/24' }),
      undefined,
      denials,
    );
    const { port } = (await proxy.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
    expect((await connectVia({ port }, 'db.corp.test:443')).body).toBe(
      'denied db.corp.test:443 (10.0.0.5): private address',
    );
    expect((await connectVia({ port }, '8.8.4.4:443')).body).toBe(
      'denied 8.8.4.4:443: address of the build host',
    );
    expect((await connectVia({ port }, '93.184.216.34:443')).body).toBe(
      'denied 93.184.216.34:443: address in a range the operator denies',
    );
    expect((await connectVia({ port }, 'db.corp.test:80')).body).toBe(
      'denied db.corp.test:80: port not allowed',
    );
    expect(denials).toHaveLength(4);
    expect(guard.calls).toEqual([]);
  });

  it("applies the build's allowed_hosts within the ceiling", async () => {
    const proxy = create(config({ KILN_EGRESS_HOSTS_CEILING: '*.corp.test' }), ['db.corp.test']);
    const { port } = (await proxy.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
    expect((await connectVia({ port }, 'web.corp.test:443')).body).toBe(
      'denied web.corp.test:443: host not in allowed_hosts',
    );
  });

  it('throws ALLOWED_HOSTS_NOT_PERMITTED when the stored list is now beyond the ceiling', () => {
    let thrown: unknown;
    try {
      create(config({ KILN_EGRESS_HOSTS_CEILING: '*.corp.test' }), ['github.com']);
    } catch (err) {
      thrown = err;
    }
    expect(isAppError(thrown, 'ALLOWED_HOSTS_NOT_PERMITTED')).toBe(true);
  });
});
