import path from 'node:path';
import type { Logger } from 'pino';
import type { CacheDiskSource } from './cache-disk-source.js';
import { selectVmm } from './select-vmm.js';
import type { EgressHooks } from './vm-build-attempt.js';
import { VmBuildRunner } from './vm-build-runner.js';
import { VmLedger } from './vm-ledger.js';
import type { Clock } from '../../common/time/clock.js';
import type { BuildRunner } from '../builds/build-runner.js';
import type { Config } from '../config/config.js';
import type { Scheduler } from '../time/scheduler.js';

/**
 * Composition of the VM side (called by the daemon factory): selects and logs the VMM, and
 * returns the runner. Run dirs live in `<dataDir>/vms/<build id>/`, the crash ledger in
 * `<dataDir>/vm-ledger/` (one fsynced JSON file per VM). `registryTarget` answers the address
 * a guest's registry connection is forwarded to; it is asked when a VM starts.
 */
export async function createVmBuildRunner(deps: {
  config: Config;
  logger: Logger;
  clock: Clock;
  scheduler: Scheduler;
  registryTarget: () => { host: string; port: number };
  /** Persistent cache disks (absent when config.caches turns them off). */
  caches?: CacheDiskSource;
  /** Replaces the egress proxies' resolver, connector or host addresses (tests only). */
  egressHooks?: EgressHooks;
}): Promise<BuildRunner> {
  const { config } = deps;
  const logger = deps.logger.child({ component: 'vm' });
  const { vmm, reason } = await selectVmm({ vm: config.vm, logger });
  logger.info({ vmm: vmm.name, accel: vmm.accel, reason }, 'VMM selected');
  return new VmBuildRunner({
    vmm,
    ledger: new VmLedger(path.join(config.server.dataDir, 'vm-ledger')),
    clock: deps.clock,
    scheduler: deps.scheduler,
    logger,
    runRoot: path.join(config.server.dataDir, 'vms'),
    imageDir: config.vm.imageDir,
    scratchBytes: config.vm.scratchBytes,
    bootTimeoutSeconds: config.vm.bootTimeoutSeconds,
    limits: {
      maxUnpackedBytes: config.builds.maxUnpackedBytes,
      maxEntries: config.builds.maxSourceEntries,
      maxPathBytes: config.builds.maxPathBytes,
    },
    mirrorUpstreams: config.mirror.upstreams.map((u) => u.name),
    buildkitFrontend: config.buildkit.frontendImage,
    layerCompression: config.builds.layerCompression,
    registryTarget: deps.registryTarget,
    ...(deps.caches ? { caches: deps.caches } : {}),
    egress: config.egress,
    ...(deps.egressHooks === undefined ? {} : { egressHooks: deps.egressHooks }),
  });
}
