import type { Logger } from 'pino';
import { createAddressClassifier } from './address-classifier.js';
import { buildAllowlist } from './build-allowlist.js';
import type { EgressConnector } from './egress-connector.js';
import type { EgressDenial } from './egress-denial.js';
import { EgressPolicy } from './egress-policy.js';
import { EgressProxy } from './egress-proxy.js';
import type { EgressResolver } from './egress-resolver.js';
import { hostAddresses } from './host-addresses.js';
import type { Clock } from '../../common/time/clock.js';
import type { EgressConfig } from '../config/egress-config.js';
import type { Scheduler } from '../time/scheduler.js';

/**
 * The proxy for one `egress` build, from the operator's settings and the build's own
 * `allowed_hosts` (undefined when it sent none). The list is narrowed again here, not only
 * when the build was accepted, because the ceiling may have changed since (a restart with
 * builds queued): a list now beyond it throws ALLOWED_HOSTS_NOT_PERMITTED and the build fails
 * rather than run wider than the operator allows. The host's addresses are read now, so each
 * build sees the interfaces as they are when it starts. Not listening yet: the VM driver
 * calls `listen` or `accept`, and `close` when the VM is gone.
 */
export function createBuildEgressProxy(options: {
  readonly config: EgressConfig;
  readonly allowedHosts: readonly string[] | undefined;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly logger: Logger;
  readonly onDenied?: (denial: EgressDenial) => void;
  /** Default: the system resolver (dns.lookup). */
  readonly resolve?: EgressResolver;
  /** Default: net.connect to the checked address. */
  readonly connect?: EgressConnector;
  /** Default: every address of every interface, read now. */
  readonly hostAddresses?: readonly string[];
}): EgressProxy {
  const { config } = options;
  const allowlist = buildAllowlist(config, options.allowedHosts);
  const policy = new EgressPolicy({
    allowedPorts: config.allowedPorts,
    exceptions: config.exceptions,
    allowlist,
    classifyAddress: createAddressClassifier({
      hostAddresses: options.hostAddresses ?? hostAddresses(),
      deniedCidrs: config.deniedCidrs,
    }),
  });
  return new EgressProxy({
    policy,
    maxConnections: config.maxConnections,
    idleTimeoutMs: config.idleTimeoutSeconds * 1000,
    clock: options.clock,
    scheduler: options.scheduler,
    logger: options.logger,
    onDenied: options.onDenied,
    resolve: options.resolve,
    connect: options.connect,
  });
}
