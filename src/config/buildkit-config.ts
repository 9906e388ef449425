import { z } from 'zod';
import { envOptionalString } from './env-schema.js';

/** `<repository>:<tag>` or `<repository>@sha256:<hex>` inside Kiln's registry. */
const IMAGE_IN_REGISTRY =
  /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[a-f0-9]{64})$/;

/**
 * BuildKit in the guest (the KILN_BUILDKIT_* variables, docs/buildkit.md). The Dockerfile
 * frontend: `builtin` (default) keeps every build on buildkitd's own frontend, whatever its
 * `# syntax=` line says; an image reference inside Kiln's registry (e.g.
 * `library/dockerfile:1.9`, seeded there by the operator) runs that frontend image instead, for
 * every BuildKit build. It is pulled with the build's token, so it must be in a namespace every
 * build may pull (`library/`).
 */
export const buildkitConfigSchema = z
  .object({
    KILN_BUILDKIT_FRONTEND: envOptionalString().refine(
      (v) => v === undefined || v === 'builtin' || IMAGE_IN_REGISTRY.test(v),
      'must be "builtin" or <repository>:<tag> (or @sha256:<digest>) in Kiln\'s registry, e.g. library/dockerfile:1.9',
    ),
  })
  .transform((env) => ({
    /** Repository reference in Kiln's registry, or null for the built-in frontend. */
    frontendImage:
      env.KILN_BUILDKIT_FRONTEND === undefined || env.KILN_BUILDKIT_FRONTEND === 'builtin'
        ? null
        : env.KILN_BUILDKIT_FRONTEND,
  }));
