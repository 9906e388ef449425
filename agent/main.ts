import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { openAgentChannel, parseChannelSpec } from './channel/open-agent-channel.js';
import { detectEngines } from './detect-engines.js';
import { parseKernelCmdline } from './kernel-cmdline.js';
import { serveBuild } from './serve-build.js';
import { CACHE_MOUNT_POINT, isMounted, releaseCacheDisk } from './volumes/cache-disk.js';
import { findDiskBySerial } from './volumes/find-disk.js';
import { readConfigVolume } from './volumes/read-config-volume.js';
import { BuildFailure } from '../common/errors/build-failure.js';
import { CMDLINE_KEYS, DISK_SERIALS } from '../common/protocol/guest-boot.js';
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

/**
 * The agent's composition root (the guest's only long-lived process): opens the channel the
 * kernel command line names, finds the disks by serial, serves the one build, and exits. The
 * guest init powers the VM off when this process ends, whatever the exit code.
 */
async function main(): Promise<number> {
  diag(`started (node ${process.version})`);
  const cmdline = parseKernelCmdline(await readFile('/proc/cmdline', 'utf8'));
  const channel = await openAgentChannel(parseChannelSpec(cmdline.get(CMDLINE_KEYS.channel)));
  const engines = await detectEngines();
  diag(`channel open; engines: ${engines.map((e) => e.name).join(', ') || 'none'}`);
  const sourceDevice = (await findDiskBySerial(DISK_SERIALS.source)) ?? '';
  const cacheDir = (await isMounted(CACHE_MOUNT_POINT)) ? CACHE_MOUNT_POINT : null;
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

// Image build time (scripts/build-image.sh): load the bundle once so Node writes its compile
// cache (NODE_COMPILE_CACHE) into the image, then stop. Under TCG, parsing the bundle is a
// large part of boot-to-agent.
if (process.env.KILN_AGENT_WARM_COMPILE_CACHE === '1') process.exit(0);

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    diag(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
