import { E2eClient } from '../test/helpers/e2e-client.js';
import {
  disposeE2eDaemon,
  seedBaseImage,
  startE2eDaemon,
  type E2eDaemon,
} from '../test/helpers/e2e-daemon.js';

/** A running daemon for a VM benchmark, ready to take builds. */
export interface VmBenchDaemon {
  daemon: E2eDaemon;
  /** A token of tenant `bench` with builds:write and builds:read, and a client that uses it. */
  token: string;
  client: E2eClient;
  /** The VMM the daemon selected at start (its `VMM selected` log line), or null without one. */
  vmm: { name: unknown; accel: unknown; reason: unknown } | null;
}

/**
 * Starts the real daemon as the end-to-end tests do (its own process, real QEMU microVMs, the
 * guest image, loopback only) with `env`, and seeds the busybox base image into its registry.
 * The caller stops it with disposeE2eDaemon; a failed seeding stops it here.
 */
export async function startVmBenchDaemon(env: Record<string, string>): Promise<VmBenchDaemon> {
  const daemon = await startE2eDaemon({ env });
  try {
    await seedBaseImage(daemon, await daemon.token('operator', ['registry:admin']));
    const token = await daemon.token('bench', ['builds:write', 'builds:read']);
    const line = daemon.logLines.find((l) => l.msg === 'VMM selected');
    return {
      daemon,
      token,
      client: new E2eClient(daemon, token),
      vmm: line ? { name: line.vmm, accel: line.accel, reason: line.reason } : null,
    };
  } catch (err) {
    await disposeE2eDaemon(daemon);
    throw err;
  }
}
