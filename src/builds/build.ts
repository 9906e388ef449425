import type { BuildTimeline } from './build-timeline.js';
import type { RegistryAccount } from './registry-account.js';
import type { BuildErrorCode } from '../../common/errors/build-error-code.js';
import type { Provenance } from '../../common/protocol/agent-messages.js';
import type { EgressSummary } from '../egress/egress-summary.js';

/**
 * queued → booting → building → pushing → ready, or failed / cancelled
 * (docs/contracts.md#build-statuses).
 */
export const BUILD_STATUSES = [
  'queued',
  'booting',
  'building',
  'pushing',
  'ready',
  'failed',
  'cancelled',
] as const;

export type BuildStatus = (typeof BUILD_STATUSES)[number];

export const TERMINAL_STATUSES: ReadonlySet<BuildStatus> = new Set([
  'ready',
  'failed',
  'cancelled',
]);

export type NetworkMode = 'isolated' | 'egress';

/** A build engine the guest image may carry (docs/contracts.md#build-engines). */
export type BuildEngineName = 'buildkit' | 'buildah';

export const BUILD_ENGINE_NAMES: readonly BuildEngineName[] = ['buildkit', 'buildah'];
export type SourceCompression = 'none' | 'gzip' | 'zstd';

/** What the client asked for, validated (all defaults applied). */
export interface BuildRequest {
  dockerfile: string | null;
  dockerfilePath: string;
  contextDir: string;
  buildArgs: Record<string, string>;
  secretIds: string[];
  /**
   * Ids of the per-build secrets sent with the upload (`secret.<id>` parts). Only the ids are
   * stored; the values live in the BuildManager's memory until the build is terminal. Absent
   * on builds without any (and on rows stored before the field existed).
   */
  buildSecretIds?: string[];
  /** Where this build's events are POSTed (`webhook_url`); absent: the tenant's default. */
  webhookUrl?: string;
  cacheScope: string | null;
  /**
   * Size of the scope's cache disk when this build creates it (an existing disk keeps its
   * size); null or absent: the operator's default. Absent on builds stored before it existed.
   */
  cacheSizeMb?: number | null;
  timeoutSeconds: number;
  memoryMb: number;
  cpus: number;
  networkMode: NetworkMode;
  /**
   * `allowed_hosts` as the build sent it (egress only), normalised and checked against the
   * operator's ceiling when accepted; null when it sent none (the operator's default applies).
   * Absent in builds stored before the field existed, which count as null.
   */
  allowedHosts?: string[] | null;
  /** Repository name within the tenant; the image lands in `<tenant>/<imageName ?? build id>`. */
  imageName: string | null;
  /**
   * `image_tags`: every name and tag to push besides the build id (absent when the build sent
   * none, and on builds stored before the field existed). The first name is the build's own
   * repository; `imageName` is then null.
   */
  imageTags?: ImageTag[];
  /**
   * The engine (`engine`, default: the guest image's best, BuildKit when it has it). Absent
   * on builds stored before the field existed, and when the image's engines are unknown and
   * none was asked for: the guest then picks its best.
   */
  engine?: BuildEngineName;
}

/** One entry of `image_tags`: an image name inside the tenant and a tag. */
export interface ImageTag {
  name: string;
  tag: string;
}

export interface BuildSource {
  /** Absolute path of the uploaded archive in the build's directory. */
  path: string;
  sizeBytes: number;
  sha256: string;
  compression: SourceCompression;
  entries: number;
  unpackedBytes: number;
}

export interface BuildFailure {
  code: BuildErrorCode;
  message: string;
  logTail: string[];
  /** An `egress` build's traffic up to the failure (absent in isolated mode). */
  egress?: EgressSummary;
}

/**
 * The agent's provenance plus what only the host knows: the `host:port` destinations an
 * `egress` build's proxy connected to (absent in isolated mode, which reaches none).
 */
export type BuildProvenance = Provenance & { hostsContacted?: string[] };

export interface BuildResult {
  /** The build's own reference, `<registry host>/<repository>:<build id>`. */
  imageRef: string;
  /**
   * Every reference pushed, the build's own first (absent on builds that finished before the
   * field existed: they pushed `imageRef` and, when named, its `latest`).
   */
  imageRefs?: string[];
  imageDigest: string;
  provenance: BuildProvenance;
  /** An `egress` build's traffic: hosts reached with bytes, denied attempts (absent when isolated). */
  egress?: EgressSummary;
  /**
   * Base images and pushed digest as the registry observed them (absent on builds that
   * finished before the registry kept a record).
   */
  registry?: RegistryAccount;
}

export interface Build {
  id: string;
  tenant: string;
  status: BuildStatus;
  request: BuildRequest;
  source: BuildSource;
  /** Output repository, e.g. "acme/web". */
  repository: string;
  /** Cache repository, e.g. "cache/acme/main", or null. */
  cacheRepository: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Times the build was handed to a runner (restart recovery re-runs once). */
  attempts: number;
  result: BuildResult | null;
  failure: BuildFailure | null;
  /** Where its time went: the host's marks and the guest's figures (see accountTime()). */
  timings: BuildTimeline;
}
