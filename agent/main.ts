import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { startupSnapshot } from 'node:v8';
import { openAgentChannel, parseChannelSpec } from './channel/open-agent-channel.js';
import { detectEngines } from './detect-engines.js';
import { parseKernelCmdline } from './kernel-cmdline.js';
import { serveBuild } from './serve-build.js';
import { CACHE_MOUNT_POINT, isMounted, releaseCacheDisk } from './volumes/cache-disk.js';
import { findDiskBySerial } from './volumes/find-disk.js';
import { readConfigVolume } from './volumes/read-config-volume.js';
import { BuildFailure } from '../common/errors/build-failure.js';
import {
  BOOT_STAGE_PREFIX,
  CMDLINE_KEYS,
  DISK_SERIALS,
  type BootStage,
} from '../common/protocol/guest-boot.js';
import { systemClock } from '../common/time/clock.js';

/** Set by scripts/build-agent.mjs from package.json at bundle time. */
const AGENT_VERSION = process.env.KILN_AGENT_VERSION ?? '0.0.0-dev';

/** Guest uptime, so console lines show where boot time goes. */
function uptime(): string {
  try {
    return readFileSync('/proc/uptime', 'utf8').split(' ')[0] ?? '?';
  } catch {
    return '?';
  }
}

function diag(line: string): void {
  process.stderr.write(`kiln-agent: [${uptime()}] ${line}\n`);
}

/** A boot-stage marker on the console (common/protocol/guest-boot.ts). */
function markStage(stage: BootStage): void {
  process.stderr.write(`${BOOT_STAGE_PREFIX} ${stage} ${uptime()}\n`);
}

/**
 * The agent's composition root (the guest's only long-lived process): opens the channel the
 * kernel command line names, finds the disks by serial, serves the one build, and exits. The
 * guest init powers the VM off when this process ends, whatever the exit code.
 */
async function main(): Promise<number> {
  markStage('agent-process');
  diag(`started (node ${process.version})`);
  const cmdline = parseKernelCmdline(await readFile('/proc/cmdline', 'utf8'));
  // Independent look-ups, side by side: each waits on the (slow, under TCG) guest kernel.
  const [channel, engines, sourceDevice, cacheMounted] = await Promise.all([
    openAgentChannel(parseChannelSpec(cmdline.get(CMDLINE_KEYS.channel))),
    detectEngines(),
    findDiskBySerial(DISK_SERIALS.source).then((d) => d ?? ''),
    isMounted(CACHE_MOUNT_POINT),
  ]);
  const cacheDir = cacheMounted ? CACHE_MOUNT_POINT : null;
  diag(`channel open; engines: ${engines.map((e) => e.name).join(', ') || 'none'}`);
  markStage('agent-ready');
  const outcome = await serveBuild({
    channel,
    clock: systemClock,
    agentVersion: AGENT_VERSION,
    engines,
    loadJob: async () => {
      const config = await findDiskBySerial(DISK_SERIALS.config);
      if (config === null) {
        throw new BuildFailure('internal', `no disk with serial ${DISK_SERIALS.config}`);
      }
      if (sourceDevice === '') {
        throw new BuildFailure('internal', `no disk with serial ${DISK_SERIALS.source}`);
      }
      return readConfigVolume(config);
    },
    environment: { sourceDevice, scratchDir: '/scratch', memoryDir: '/run/kiln', cacheDir },
    releaseCache: cacheDir === null ? null : () => releaseCacheDisk(cacheDir, diag),
    diag,
  });
  diag(`build served: ${outcome}`);
  await channel.close();
  return outcome === 'host_gone' ? 2 : 0;
}

/** Runs the agent, or (at image build time) only proves that the bundle loads. */
function run(): void {
  // scripts/build-image.sh runs the snapshot once with this set: it must load, then stop.
  if (process.env.KILN_AGENT_LOAD_CHECK === '1') process.exit(0);
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      diag(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(1);
    },
  );
}

// Image build time (scripts/build-image.sh): `node --build-snapshot` evaluates the whole bundle
// (every module, the protocol's zod schemas) once and saves the heap as a V8 startup snapshot;
// the guest starts from it (`node --snapshot-blob`) and runs only `run`. Under TCG, evaluating
// the bundle took as long as starting Node itself.
if (startupSnapshot.isBuildingSnapshot()) startupSnapshot.setDeserializeMainFunction(run);
else run();
