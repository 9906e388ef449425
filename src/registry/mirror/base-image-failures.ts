import { BUILD_SUBJECT_PREFIX } from '../registry-token-service.js';

/** Why a base image could not be served, as the mirror's error `detail.cause` names it. */
export type BaseImageFailureCause =
  'not_found' | 'unreachable' | 'unauthorized' | 'rate_limited' | 'invalid' | 'not_configured';

/** A mirrored image the registry could not serve to a build. */
export interface BaseImageFailure {
  /** The image as the Dockerfile would name it: `docker.io/library/node:22-slim`. */
  readonly image: string;
  readonly cause: BaseImageFailureCause;
  /** The mirror's own message (names the upstream, the image and the cause). */
  readonly message: string;
}

/** Records kept at most, so a flood of failing pulls cannot grow memory without bound. */
const MAX_BUILDS = 10_000;

/**
 * The registry's record of the mirror pulls it could not serve, per build. The registry
 * writes it when a pull under a build token fails (the token's subject names the build); the
 * build manager reads it when that build's engine fails, so the build can end
 * `base_image_unavailable` with the registry's reason instead of the engine's exit status. The
 * host observed the failure itself: nothing here comes from the guest.
 */
export class BaseImageFailures {
  private readonly byBuild = new Map<string, BaseImageFailure>();

  /**
   * Records a failure seen by `subject` (a registry credential's subject). Only build tokens
   * are kept, and only a build's first failure: the first `FROM` that could not be had is the
   * one that stopped it.
   */
  record(subject: string, failure: BaseImageFailure): void {
    if (!subject.startsWith(BUILD_SUBJECT_PREFIX)) return;
    const buildId = subject.slice(BUILD_SUBJECT_PREFIX.length);
    if (this.byBuild.has(buildId)) return;
    if (this.byBuild.size >= MAX_BUILDS) {
      const oldest = this.byBuild.keys().next();
      if (oldest.done !== true) this.byBuild.delete(oldest.value);
    }
    this.byBuild.set(buildId, failure);
  }

  /** Returns and forgets the build's first recorded failure (called once, when it ends). */
  take(buildId: string): BaseImageFailure | null {
    const failure = this.byBuild.get(buildId) ?? null;
    this.byBuild.delete(buildId);
    return failure;
  }
}
