import type { Migration } from './migration.js';
import { migration0001Builds } from './migrations/0001-builds.js';
import { migration0002Registry } from './migrations/0002-registry.js';
import { migration0003RegistryTimesInMs } from './migrations/0003-registry-times-in-ms.js';
import { migration0004Caches } from './migrations/0004-caches.js';
import { migration0005Webhooks } from './migrations/0005-webhooks.js';
import { migration0006BuildRegistryRecord } from './migrations/0006-build-registry-record.js';
import { migration0007RegistryBlobTouchedAt } from './migrations/0007-registry-blob-touched-at.js';
import { migration0008RegistryManifestUsedAt } from './migrations/0008-registry-manifest-used-at.js';
import { migration0009BuildTimeline } from './migrations/0009-build-timeline.js';
import { migration0010WebhookSecretRotation } from './migrations/0010-webhook-secret-rotation.js';

/**
 * Every migration, in order. Each part of the daemon owns its own migration files under
 * `src/storage/migrations/`; versions are unique and only ever appended. Times are stored as
 * INTEGER milliseconds since the epoch in every table.
 */
export const MIGRATIONS: readonly Migration[] = [
  migration0001Builds,
  migration0002Registry,
  migration0003RegistryTimesInMs,
  migration0004Caches,
  migration0005Webhooks,
  migration0006BuildRegistryRecord,
  migration0007RegistryBlobTouchedAt,
  migration0008RegistryManifestUsedAt,
  migration0009BuildTimeline,
  migration0010WebhookSecretRotation,
];
