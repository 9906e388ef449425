import { open } from 'node:fs/promises';

import { BUILD_JOB_FILE, buildJobSchema, type BuildJob } from '../../common/protocol/build-job.js';
import { AppError } from '../../src/errors/app-error.js';

/** Largest build.json the agent accepts. */
const MAX_BUILD_JSON_BYTES = 1024 * 1024;

/**
 * Reads build.json from the config volume: an uncompressed tar holding one regular file
 * named `build.json` (common/protocol/build-job.ts). Only the first entries are scanned.
 */
export async function readConfigVolume(devicePath: string): Promise<BuildJob> {
  const handle = await open(devicePath, 'r');
  try {
    let offset = 0;
    for (let entry = 0; entry < 16; entry++) {
      const header = Buffer.alloc(512);
      const { bytesRead } = await handle.read(header, 0, 512, offset);
      if (bytesRead < 512 || header.every((b) => b === 0)) break;
      const name = cString(header.subarray(0, 100)).replace(/^\.\//, '');
      const prefix = cString(header.subarray(345, 500));
      const size = parseOctal(header.subarray(124, 136));
      const type = String.fromCharCode(header[156] ?? 0);
      const fullName = prefix ? `${prefix}/${name}` : name;
      if (fullName === BUILD_JOB_FILE && (type === '0' || type === '\0')) {
        if (size > MAX_BUILD_JSON_BYTES) {
          throw new AppError('AGENT_CONFIG_INVALID', `build.json is ${size} bytes`);
        }
        const body = Buffer.alloc(size);
        const r = await handle.read(body, 0, size, offset + 512);
        if (r.bytesRead !== size)
          throw new AppError('AGENT_CONFIG_INVALID', 'build.json is truncated');
        return parseBuildJob(body.toString('utf8'));
      }
      offset += 512 + Math.ceil(size / 512) * 512;
    }
  } finally {
    await handle.close();
  }
  throw new AppError('AGENT_CONFIG_INVALID', 'the config volume holds no build.json');
}

/** Parses and validates build.json text. */
function parseBuildJob(text: string): BuildJob {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AppError('AGENT_CONFIG_INVALID', `build.json is not JSON: ${(err as Error).message}`);
  }
  const r = buildJobSchema.safeParse(value);
  if (!r.success) {
    throw new AppError(
      'AGENT_CONFIG_INVALID',
      `build.json is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return r.data;
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul === -1 ? b.length : nul).toString('utf8');
}

function parseOctal(b: Buffer): number {
  const text = cString(b).trim();
  if (!/^[0-7]*$/.test(text)) throw new AppError('AGENT_CONFIG_INVALID', 'bad tar header size');
  return text === '' ? 0 : parseInt(text, 8);
}
