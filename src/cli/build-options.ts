import { usage } from './cli-exit.js';

/** `kiln build` options as commander hands them over. */
export interface BuildCliOptions {
  file?: string;
  tag: string[];
  buildArg: string[];
  secret: string[];
  storedSecret: string[];
  cacheScope?: string;
  network?: 'isolated' | 'egress';
  allowHost: string[];
  engine?: string;
  timeout?: number;
  memory?: number;
  cpus?: number;
  detach?: boolean;
  output?: 'json' | 'text';
  quiet?: boolean;
}

/**
 * `-t NAME[:TAG]`… → the `image_tags` field, each once. The daemon names images
 * `<tenant>/<NAME>` on its own registry (the first NAME is the build's own repository, which
 * also gets the build id as a tag), so a registry host in the name is refused rather than
 * dropped; the daemon checks the names and tags themselves (INVALID_IMAGE_TAGS).
 */
export function imageTagsFrom(tags: readonly string[]): string[] {
  for (const tag of tags) {
    const slash = tag.lastIndexOf('/');
    const colon = tag.lastIndexOf(':');
    const name = colon > slash ? tag.slice(0, colon) : tag;
    const first = name.split('/')[0] ?? '';
    if (
      name.includes('/') &&
      (first.includes('.') || first.includes(':') || first === 'localhost')
    ) {
      throw usage(
        `-t ${tag}: give the name without the registry host; the image lands in <tenant>/<name> on the daemon's registry`,
      );
    }
    if (name === '') throw usage(`-t ${tag}: the name is empty`);
  }
  return [...new Set(tags)];
}

/**
 * `--build-arg K=V` pairs, Docker style: `--build-arg K` alone takes K from the environment
 * and is left out when the environment has no K.
 */
export function buildArgsFrom(
  pairs: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const args: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? pair : pair.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw usage(`--build-arg ${pair}: expected NAME=VALUE with a name like VERSION`);
    }
    if (eq === -1) {
      const value = env[key];
      if (value !== undefined) args[key] = value;
    } else {
      args[key] = pair.slice(eq + 1);
    }
  }
  return args;
}

/**
 * Maps the options onto the text fields of `POST /builds` (everything but the Dockerfile,
 * which depends on the context, and `--secret` values, read by `buildSecretFields`), in a fixed order; an option left out is a field left out, so
 * the daemon's defaults apply. Flags the daemon has no field for fail with a usage error.
 */
export function buildFieldsFrom(
  opts: BuildCliOptions,
  env: Readonly<Record<string, string | undefined>>,
): [string, string][] {
  // The daemon's rule: allowed_hosts applies to egress builds only (isolated is the default).
  if (opts.allowHost.length > 0 && opts.network !== 'egress') {
    throw usage(
      '--allow-host: an allow-list only applies to egress builds; add --network egress or leave --allow-host out',
    );
  }
  if (opts.engine !== undefined && opts.engine !== 'buildkit' && opts.engine !== 'buildah') {
    throw usage(`--engine: "${opts.engine}" is not an engine; use buildkit or buildah`);
  }
  if (opts.quiet && opts.output === 'json') {
    throw usage('--quiet and --output json cannot be combined; pick one');
  }
  const fields: [string, string][] = [];
  const args = buildArgsFrom(opts.buildArg, env);
  if (Object.keys(args).length > 0) fields.push(['build_args', JSON.stringify(args)]);
  if (opts.storedSecret.length > 0) {
    fields.push(['secrets', JSON.stringify([...new Set(opts.storedSecret)])]);
  }
  if (opts.cacheScope !== undefined) fields.push(['cache_scope', opts.cacheScope]);
  if (opts.timeout !== undefined) fields.push(['timeout_seconds', String(opts.timeout)]);
  if (opts.memory !== undefined) fields.push(['memory_mb', String(opts.memory)]);
  if (opts.cpus !== undefined) fields.push(['cpus', String(opts.cpus)]);
  if (opts.network !== undefined) fields.push(['network_mode', opts.network]);
  if (opts.engine !== undefined) fields.push(['engine', opts.engine]);
  if (opts.allowHost.length > 0) {
    fields.push(['allowed_hosts', JSON.stringify([...new Set(opts.allowHost)])]);
  }
  const imageTags = imageTagsFrom(opts.tag);
  if (imageTags.length > 0) fields.push(['image_tags', JSON.stringify(imageTags)]);
  return fields;
}
