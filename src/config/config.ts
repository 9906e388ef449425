import os from 'node:os';
import path from 'node:path';
import { type z } from 'zod';
import { buildConfigSchema } from './build-config.js';
import { registryConfigSchema } from './registry-config.js';
import { serverConfigSchema } from './server-config.js';
import { vmConfigSchema } from './vm-config.js';

const schema = serverConfigSchema
  .extend(buildConfigSchema.shape)
  .extend(registryConfigSchema.shape)
  .extend(vmConfigSchema.shape);

type Raw = z.output<typeof schema>;

/** The daemon's whole configuration, parsed once at start and frozen. */
export interface Config {
  readonly server: {
    readonly host: string;
    readonly port: number;
    readonly dataDir: string;
    readonly publicUrl: string;
    readonly logLevel: Raw['KILN_LOG_LEVEL'];
    readonly shutdownGraceSeconds: number;
  };
  readonly builds: {
    readonly maxConcurrent: number;
    readonly maxRunningPerTenant: number;
    readonly maxQueuedPerTenant: number;
    readonly queueTimeoutSeconds: number;
    readonly maxSourceBytes: number;
    readonly maxUnpackedBytes: number;
    readonly maxSourceEntries: number;
    readonly maxPathBytes: number;
    readonly defaultTimeoutSeconds: number;
    readonly maxTimeoutSeconds: number;
    readonly defaultMemoryMb: number;
    readonly minMemoryMb: number;
    readonly maxMemoryMb: number;
    readonly defaultCpus: number;
    readonly maxCpus: number;
    readonly maxLogBytes: number;
  };
  readonly registry: {
    readonly service: string;
    readonly maxManifestBytes: number;
    readonly uploadSessionTtlSeconds: number;
    readonly tokenTtlSeconds: number;
  };
  readonly vm: {
    readonly vmm: Raw['KILN_VMM'];
    readonly imageDir: string;
    readonly cacheDir: string;
    readonly qemuBinary: string | undefined;
    readonly cloudHypervisorBinary: string | undefined;
    readonly bootTimeoutSeconds: number;
    readonly scratchBytes: number;
    readonly chTapPrefix: string | undefined;
  };
}

/** Thrown by loadConfig with every problem found, one per line. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Parses the KILN_* environment (pure: it reads only `env`). Reports every problem at once
 * and returns a deeply frozen Config.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const known = Object.keys(schema.shape);
  const input: Record<string, string> = {};
  for (const key of known) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  }
  const r = parsed.data;
  const problems: string[] = [];
  const check = (ok: boolean, message: string) => {
    if (!ok) problems.push(message);
  };
  check(
    r.KILN_MIN_MEMORY_MB <= r.KILN_DEFAULT_MEMORY_MB,
    'KILN_MIN_MEMORY_MB must be <= KILN_DEFAULT_MEMORY_MB',
  );
  check(
    r.KILN_DEFAULT_MEMORY_MB <= r.KILN_MAX_MEMORY_MB,
    'KILN_DEFAULT_MEMORY_MB must be <= KILN_MAX_MEMORY_MB',
  );
  check(r.KILN_DEFAULT_CPUS <= r.KILN_MAX_CPUS, 'KILN_DEFAULT_CPUS must be <= KILN_MAX_CPUS');
  check(
    r.KILN_DEFAULT_TIMEOUT_SECONDS <= r.KILN_MAX_TIMEOUT_SECONDS,
    'KILN_DEFAULT_TIMEOUT_SECONDS must be <= KILN_MAX_TIMEOUT_SECONDS',
  );
  let publicUrl = `http://${r.KILN_HOST.includes(':') ? `[${r.KILN_HOST}]` : r.KILN_HOST}:${r.KILN_PORT}`;
  if (r.KILN_PUBLIC_URL !== undefined) {
    try {
      const u = new URL(r.KILN_PUBLIC_URL);
      check(u.protocol === 'http:' || u.protocol === 'https:', 'KILN_PUBLIC_URL must be http(s)');
      publicUrl = u.origin;
    } catch {
      problems.push('KILN_PUBLIC_URL: must be an absolute URL');
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const home = env.HOME ?? os.homedir();
  const cacheDir = path.resolve(
    r.KILN_CACHE_DIR ?? path.join(env.XDG_CACHE_HOME ?? path.join(home, '.cache'), 'kiln'),
  );
  const config: Config = {
    server: {
      host: r.KILN_HOST,
      port: r.KILN_PORT,
      dataDir: path.resolve(r.KILN_DATA_DIR),
      publicUrl,
      logLevel: r.KILN_LOG_LEVEL,
      shutdownGraceSeconds: r.KILN_SHUTDOWN_GRACE_SECONDS,
    },
    builds: {
      maxConcurrent: r.KILN_MAX_CONCURRENT_BUILDS,
      maxRunningPerTenant: r.KILN_MAX_RUNNING_PER_TENANT,
      maxQueuedPerTenant: r.KILN_MAX_QUEUED_PER_TENANT,
      queueTimeoutSeconds: r.KILN_QUEUE_TIMEOUT_SECONDS,
      maxSourceBytes: r.KILN_MAX_SOURCE_BYTES,
      maxUnpackedBytes: r.KILN_MAX_UNPACKED_BYTES,
      maxSourceEntries: r.KILN_MAX_SOURCE_ENTRIES,
      maxPathBytes: r.KILN_MAX_PATH_BYTES,
      defaultTimeoutSeconds: r.KILN_DEFAULT_TIMEOUT_SECONDS,
      maxTimeoutSeconds: r.KILN_MAX_TIMEOUT_SECONDS,
      defaultMemoryMb: r.KILN_DEFAULT_MEMORY_MB,
      minMemoryMb: r.KILN_MIN_MEMORY_MB,
      maxMemoryMb: r.KILN_MAX_MEMORY_MB,
      defaultCpus: r.KILN_DEFAULT_CPUS,
      maxCpus: r.KILN_MAX_CPUS,
      maxLogBytes: r.KILN_MAX_LOG_BYTES,
    },
    registry: {
      service: r.KILN_REGISTRY_SERVICE,
      maxManifestBytes: r.KILN_MAX_MANIFEST_BYTES,
      uploadSessionTtlSeconds: r.KILN_UPLOAD_SESSION_TTL_SECONDS,
      tokenTtlSeconds: r.KILN_REGISTRY_TOKEN_TTL_SECONDS,
    },
    vm: {
      vmm: r.KILN_VMM,
      imageDir: path.resolve(r.KILN_IMAGE_DIR ?? path.join(cacheDir, 'images', 'current')),
      cacheDir,
      qemuBinary: r.KILN_QEMU_BINARY,
      cloudHypervisorBinary: r.KILN_CLOUD_HYPERVISOR_BINARY,
      bootTimeoutSeconds: r.KILN_BOOT_TIMEOUT_SECONDS,
      scratchBytes: r.KILN_SCRATCH_BYTES,
      chTapPrefix: r.KILN_CH_TAP_PREFIX,
    },
  };
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
