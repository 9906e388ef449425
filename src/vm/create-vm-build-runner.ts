import path from 'node:path';
import type { Database } from 'better-sqlite3';
import type { Logger } from 'pino';
import { selectVmm } from './select-vmm.js';
import { VmBuildRunner } from './vm-build-runner.js';
import { VmLedger } from './vm-ledger.js';
import type { BuildRunner } from '../builds/build-runner.js';
import type { Config } from '../config/config.js';
import type { Clock } from '../time/clock.js';

/**
 * Composition of the VM side (called by src/main.ts once the daemon listens): selects and
 * logs the VMM, and returns the runner. Run dirs live in `<dataDir>/vms/<build id>/`, the crash
 * ledger in `<dataDir>/vm-ledger/` (one fsynced JSON file per VM, so `db` is not needed for
 * it). `registryTarget` is the daemon's own listener; a wildcard bind address is reached on
 * loopback.
 */
export async function createVmBuildRunner(deps: {
  config: Config;
  db: Database;
  logger: Logger;
  clock: Clock;
  registryTarget: { host: string; port: number };
}): Promise<BuildRunner> {
  const { config } = deps;
  const logger = deps.logger.child({ component: 'vm' });
  const { vmm, reason } = await selectVmm({ vm: config.vm, logger });
  logger.info({ vmm: vmm.name, accel: vmm.accel, reason }, 'VMM selected');
  return new VmBuildRunner({
    vmm,
    ledger: new VmLedger(path.join(config.server.dataDir, 'vm-ledger')),
    clock: deps.clock,
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
    registryTarget: loopbackFor(deps.registryTarget),
  });
}

/** The address to connect to for a listener bound to `target` (wildcards → loopback). */
function loopbackFor(target: { host: string; port: number }): { host: string; port: number } {
  if (target.host === '0.0.0.0' || target.host === '')
    return { host: '127.0.0.1', port: target.port };
  if (target.host === '::' || target.host === '[::]') return { host: '::1', port: target.port };
  return target;
}
