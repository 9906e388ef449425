import { posix } from 'node:path';
import {
  DEFAULT_TAG,
  isValidCacheScope,
  isValidImageName,
  isValidImageTag,
} from './build-repositories.js';
import {
  BUILD_ENGINE_NAMES,
  type BuildEngineName,
  type BuildRequest,
  type ImageTag,
} from './build.js';
import { SECRET_ID_PATTERN } from '../auth/secret-store.js';
import { AppError } from '../errors/app-error.js';
import { parseWebhookUrl } from '../webhooks/parse-webhook-url.js';

/** The text fields of POST /builds (docs/contracts.md#builds); `source` is the file part. */
export const BUILD_FIELDS = [
  'dockerfile',
  'dockerfile_path',
  'context_dir',
  'build_args',
  'secrets',
  'cache_scope',
  'cache_size_mb',
  'timeout_seconds',
  'memory_mb',
  'cpus',
  'network_mode',
  'allowed_hosts',
  'engine',
  'image_name',
  'image_tags',
  'source_sha256',
  'webhook_url',
] as const;

export type BuildField = (typeof BUILD_FIELDS)[number];

export function isBuildField(name: string): name is BuildField {
  return (BUILD_FIELDS as readonly string[]).includes(name);
}

/** Ranges and defaults for resources (config.builds). */
export interface BuildRequestPolicy {
  defaultTimeoutSeconds: number;
  maxTimeoutSeconds: number;
  defaultMemoryMb: number;
  minMemoryMb: number;
  maxMemoryMb: number;
  defaultCpus: number;
  maxCpus: number;
  /**
   * Largest `cache_size_mb` (config.caches' ceiling); without it the field is refused, as when
   * cache disks are turned off.
   */
  maxCacheSizeMb?: number;
  /**
   * The engines the guest image carries, best first (its image.json); absent when unknown,
   * and then any engine is accepted and the guest reports one it lacks.
   */
  engines?: readonly BuildEngineName[];
}

/** Smallest cache disk a build may ask for. */
const MIN_CACHE_SIZE_MB = 256;

const MAX_BUILD_ARGS = 200;
/** Most `image_tags` entries one build may push. */
export const MAX_IMAGE_TAGS = 16;
const MAX_SECRETS = 100;
const BUILD_ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/**
 * `engine`: one the guest image has (ENGINE_UNAVAILABLE names those it has), or by default its
 * best; undefined when neither was given nor known.
 */
function parseEngine(
  raw: string | undefined,
  available: readonly BuildEngineName[] | undefined,
): BuildEngineName | undefined {
  if (raw === undefined) return available?.[0];
  const engine = BUILD_ENGINE_NAMES.find((name) => name === raw);
  if (engine === undefined)
    throw new AppError('INVALID_ENGINE', undefined, { details: { field: 'engine' } });
  if (available !== undefined && !available.includes(engine)) {
    throw new AppError(
      'ENGINE_UNAVAILABLE',
      `engine "${engine}" is not in this host's guest image (it has: ${available.join(', ') || 'none'})`,
      { details: { field: 'engine', engine, available: [...available] } },
    );
  }
  return engine;
}

function invalid(field: string, message: string): AppError {
  return new AppError('INVALID_FIELD', `${field}: ${message}`, { details: { field } });
}

/** A relative path inside the source tree ('' allowed when `allowEmpty`). */
function relativePath(field: string, value: string, allowEmpty: boolean): string {
  if (value === '' && allowEmpty) return '';
  if (value.length > 1024 || value.includes('\0') || value.startsWith('/')) {
    throw invalid(field, 'must be a relative path inside the source');
  }
  const parts = value.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw invalid(field, 'must stay inside the source');
  if (parts.length === 0) {
    if (allowEmpty) return '';
    throw invalid(field, 'must name a file');
  }
  return posix.join(...parts);
}

function wholeNumber(
  field: string,
  value: string | undefined,
  def: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return def;
  if (!/^\d{1,9}$/.test(value.trim())) throw invalid(field, 'must be a whole number');
  const n = Number(value.trim());
  if (n < min || n > max) {
    throw new AppError('RESOURCE_OUT_OF_RANGE', `${field} must be between ${min} and ${max}.`, {
      details: { field, min, max },
    });
  }
  return n;
}

function parseJson(field: string, value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    throw invalid(field, 'must be JSON');
  }
}

/**
 * `allowed_hosts`: a JSON array of strings. Whether each is a valid pattern within the
 * operator's ceiling is decided at accept (buildAllowlist), which knows the egress settings.
 */
function parseAllowedHosts(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  const parsed = parseJson('allowed_hosts', value);
  if (!Array.isArray(parsed) || parsed.some((h) => typeof h !== 'string')) {
    throw new AppError('INVALID_ALLOWED_HOSTS', 'allowed_hosts must be a JSON array of strings.', {
      details: { field: 'allowed_hosts' },
    });
  }
  return parsed as string[];
}

function invalidTags(message: string, tag?: string): AppError {
  return new AppError('INVALID_IMAGE_TAGS', `image_tags: ${message}`, {
    details: { field: 'image_tags', ...(tag === undefined ? {} : { tag }) },
  });
}

/**
 * `image_tags`: a JSON array of 1 to MAX_IMAGE_TAGS `NAME[:TAG]` strings (the tag after the
 * last `:` that follows the last `/`, `latest` when none, as Docker reads `-t`). Repeated
 * entries count once.
 */
function parseImageTags(value: string | undefined): ImageTag[] | null {
  if (value === undefined) return null;
  const parsed = parseJson('image_tags', value);
  if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > MAX_IMAGE_TAGS) {
    throw invalidTags(`must be a JSON array of 1 to ${MAX_IMAGE_TAGS} "NAME[:TAG]" strings`);
  }
  const tags: ImageTag[] = [];
  for (const entry of parsed) {
    if (typeof entry !== 'string') throw invalidTags('must hold strings');
    const slash = entry.lastIndexOf('/');
    const colon = entry.lastIndexOf(':');
    const name = colon > slash ? entry.slice(0, colon) : entry;
    const tag = colon > slash ? entry.slice(colon + 1) : DEFAULT_TAG;
    if (!isValidImageName(name)) {
      throw invalidTags(
        `${JSON.stringify(entry)}: the name is not a repository name inside the tenant`,
        entry,
      );
    }
    if (!isValidImageTag(tag)) {
      throw invalidTags(
        `${JSON.stringify(entry)}: the tag must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127} and not look like a build id`,
        entry,
      );
    }
    if (!tags.some((t) => t.name === name && t.tag === tag)) tags.push({ name, tag });
  }
  return tags;
}

/**
 * Validates the text fields of POST /builds and applies defaults. Throws the precise catalog
 * code for the first problem. Returns the request plus the optional expected source digest.
 */
export function parseBuildRequest(
  fields: ReadonlyMap<string, string>,
  policy: BuildRequestPolicy,
  options: { readonly fieldOnly?: boolean } = {},
): { request: BuildRequest; sourceSha256: string | null } {
  const get = (name: BuildField) => fields.get(name);

  const dockerfile = get('dockerfile') ?? null;
  if (dockerfile !== null && dockerfile.trim() === '') throw invalid('dockerfile', 'is empty');

  let buildArgs: Record<string, string> = {};
  const rawArgs = get('build_args');
  if (rawArgs !== undefined) {
    const parsed = parseJson('build_args', rawArgs);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw invalid('build_args', 'must be a JSON object of strings');
    }
    const entries = Object.entries(parsed);
    if (entries.length > MAX_BUILD_ARGS) throw invalid('build_args', 'has too many entries');
    buildArgs = {};
    for (const [k, v] of entries) {
      if (!BUILD_ARG_NAME.test(k)) throw invalid('build_args', `bad name ${JSON.stringify(k)}`);
      if (typeof v !== 'string') throw invalid('build_args', `value of ${k} must be a string`);
      buildArgs[k] = v;
    }
  }

  let secretIds: string[] = [];
  const rawSecrets = get('secrets');
  if (rawSecrets !== undefined) {
    const parsed = parseJson('secrets', rawSecrets);
    if (!Array.isArray(parsed) || parsed.length > MAX_SECRETS) {
      throw invalid('secrets', `must be a JSON array of at most ${MAX_SECRETS} ids`);
    }
    for (const id of parsed) {
      if (typeof id !== 'string' || !SECRET_ID_PATTERN.test(id)) {
        throw invalid('secrets', 'must hold secret ids');
      }
    }
    secretIds = [...new Set(parsed as string[])];
  }

  const cacheScope = get('cache_scope') ?? null;
  if (cacheScope !== null && !isValidCacheScope(cacheScope)) {
    throw new AppError('INVALID_CACHE_SCOPE', undefined, { details: { field: 'cache_scope' } });
  }
  // Checked on its own (fields sent before the source are checked one by one), so without a
  // cache_scope it is accepted and has no effect.
  const rawCacheSize = get('cache_size_mb');
  let cacheSizeMb: number | null = null;
  if (rawCacheSize !== undefined) {
    if (policy.maxCacheSizeMb === undefined) {
      throw invalid('cache_size_mb', 'cache disks are turned off on this host');
    }
    cacheSizeMb = wholeNumber(
      'cache_size_mb',
      rawCacheSize,
      MIN_CACHE_SIZE_MB,
      MIN_CACHE_SIZE_MB,
      policy.maxCacheSizeMb,
    );
  }
  const imageName = get('image_name') ?? null;
  if (imageName !== null && !isValidImageName(imageName)) {
    throw new AppError('INVALID_IMAGE_NAME', undefined, { details: { field: 'image_name' } });
  }
  const imageTags = parseImageTags(get('image_tags'));
  if (imageTags !== null && imageName !== null) {
    throw invalidTags('give image_name or image_tags, not both');
  }
  const networkMode = get('network_mode') ?? 'isolated';
  if (networkMode !== 'isolated' && networkMode !== 'egress') {
    throw new AppError('INVALID_NETWORK_MODE');
  }
  const allowedHosts = parseAllowedHosts(get('allowed_hosts'));
  // A single field is checked as it arrives (`fieldOnly`), before network_mode may have.
  if (allowedHosts !== null && networkMode !== 'egress' && options.fieldOnly !== true) {
    throw invalid('allowed_hosts', 'only applies with network_mode=egress');
  }
  const engine = parseEngine(get('engine'), policy.engines);
  const sha = get('source_sha256');
  if (sha !== undefined && !/^[a-f0-9]{64}$/.test(sha.toLowerCase())) {
    throw invalid('source_sha256', 'must be 64 hex characters');
  }

  const rawWebhookUrl = get('webhook_url');
  const webhookUrl = rawWebhookUrl === undefined ? undefined : parseWebhookUrl(rawWebhookUrl);

  return {
    request: {
      ...(webhookUrl === undefined ? {} : { webhookUrl }),
      dockerfile,
      dockerfilePath: relativePath(
        'dockerfile_path',
        get('dockerfile_path') ?? 'Dockerfile',
        false,
      ),
      contextDir: relativePath('context_dir', get('context_dir') ?? '', true),
      buildArgs,
      secretIds,
      cacheScope,
      cacheSizeMb,
      timeoutSeconds: wholeNumber(
        'timeout_seconds',
        get('timeout_seconds'),
        policy.defaultTimeoutSeconds,
        10,
        policy.maxTimeoutSeconds,
      ),
      memoryMb: wholeNumber(
        'memory_mb',
        get('memory_mb'),
        policy.defaultMemoryMb,
        policy.minMemoryMb,
        policy.maxMemoryMb,
      ),
      cpus: wholeNumber('cpus', get('cpus'), policy.defaultCpus, 1, policy.maxCpus),
      networkMode,
      allowedHosts,
      imageName,
      ...(imageTags === null ? {} : { imageTags }),
      ...(engine === undefined ? {} : { engine }),
    },
    sourceSha256: sha?.toLowerCase() ?? null,
  };
}
