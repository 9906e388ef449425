import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** What the stand-in does (see cloud-hypervisor-stand-in.mjs). */
export type CloudHypervisorStandInScenario =
  'normal' | 'reboot' | 'boot-fails' | 'no-api' | 'no-agent';

/** One line of the stand-in's record file. */
export type CloudHypervisorStandInRecord =
  | { kind: 'argv'; args: string[] }
  | { kind: 'listening'; apiSocket: string; pid: number }
  | {
      kind: 'request';
      method: string;
      endpoint: string;
      contentLength: string | null;
      contentType: string | null;
      body: unknown;
    }
  | { kind: 'guest'; what: string; [key: string]: unknown };

export interface CloudHypervisorStandIn {
  /** Executable to pass as CloudHypervisorVmm's `binary`. */
  binary: string;
  /** Everything the stand-in recorded so far, in order. */
  records(): Promise<CloudHypervisorStandInRecord[]>;
  /** The API requests recorded so far. */
  requests(): Promise<Extract<CloudHypervisorStandInRecord, { kind: 'request' }>[]>;
}

const SCRIPT = fileURLToPath(new URL('./cloud-hypervisor-stand-in.mjs', import.meta.url));

/**
 * Writes an executable wrapper in `dir` that runs the Cloud Hypervisor STAND-IN (not a VMM;
 * Cloud Hypervisor cannot be installed here) with the given scenario and a record file.
 */
export async function createCloudHypervisorStandIn(options: {
  dir: string;
  scenario?: CloudHypervisorStandInScenario;
  tunnelBytes?: number;
}): Promise<CloudHypervisorStandIn> {
  const recordFile = path.join(options.dir, 'stand-in-records.jsonl');
  const binary = path.join(options.dir, 'cloud-hypervisor');
  const env = [
    `KILN_CH_STAND_IN_RECORD='${recordFile}'`,
    `KILN_CH_STAND_IN_SCENARIO='${options.scenario ?? 'normal'}'`,
    `KILN_CH_STAND_IN_TUNNEL_BYTES='${options.tunnelBytes ?? 1024 * 1024}'`,
  ].join(' ');
  await writeFile(
    binary,
    `#!/bin/sh\n# Cloud Hypervisor stand-in wrapper (tests only)\nexec env ${env} '${process.execPath}' '${SCRIPT}' "$@"\n`,
  );
  await chmod(binary, 0o755);
  const records = async (): Promise<CloudHypervisorStandInRecord[]> => {
    const text = await readFile(recordFile, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as CloudHypervisorStandInRecord);
  };
  return {
    binary,
    records,
    requests: async () =>
      (await records()).filter(
        (r): r is Extract<CloudHypervisorStandInRecord, { kind: 'request' }> =>
          r.kind === 'request',
      ),
  };
}
