import type { Logger } from 'pino';
import type { BlobStore } from './blob-store.js';
import type { BuildRegistryRecord } from './build-registry-record.js';
import type { BaseImageFailures } from './mirror/base-image-failures.js';
import type { RegistryMirror } from './mirror/registry-mirror.js';
import type { RegistryAuthenticator } from './registry-authenticator.js';
import type { RegistryStore } from './registry-store.js';
import type { RegistryTokenService } from './registry-token-service.js';
import type { UploadSessions } from './upload-sessions.js';
import type { Clock } from '../../common/time/clock.js';
import type { Config } from '../config/config.js';

/** What the registry's request handlers share. */
export interface RegistryDeps {
  store: RegistryStore;
  blobs: BlobStore;
  uploads: UploadSessions;
  tokens: RegistryTokenService;
  authenticator: RegistryAuthenticator;
  /** The pull-through mirror behind `mirror/<upstream>/<repository>`. */
  mirror: RegistryMirror;
  /** Where mirror pulls that could not be served are recorded, per build. */
  baseImageFailures: BaseImageFailures;
  /** Where manifests served to and pushed by builds are recorded. */
  buildRecord: BuildRegistryRecord;
  config: Config['registry'];
  /** The daemon's public base URL (`Config.server.publicUrl`), for realms without a usable Host. */
  publicUrl: () => string;
  clock: Clock;
  logger: Logger;
}
