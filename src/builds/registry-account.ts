import { buildReferences, type BuildNaming } from './build-repositories.js';
import type { Build } from './build.js';
import type { Provenance } from '../../common/protocol/agent-messages.js';
import type {
  BuildRegistryObservations,
  RegistryObservation,
} from '../registry/build-registry-record.js';

/**
 * A ready build's base images and pushed digest as Kiln's registry observed them under the
 * build's token, beside the agent's report. The agent runs inside the VM with the build's
 * code and could report anything; this is what the host can vouch for.
 */
export interface RegistryAccount {
  /**
   * Manifests the registry served to the build outside its own and its cache repositories:
   * the upstream (for mirrored images), the repository, the reference asked for (a tag's
   * resolution, or the platform manifest asked by digest) and the digest answered.
   */
  baseImages: RegistryObservation[];
  /** The digest the registry accepted under the build's tag (its id), or null if none. */
  pushedDigest: string | null;
  /** Each point where the agent's report and the registry's observation disagree. */
  disagreements: string[];
}

/**
 * Compares the agent's report (pushed digest, `provenance.baseImages`) with the registry's
 * observations of the build. A base image digest the registry never served to the build, or a
 * pushed digest other than the one the registry accepted under the build's tag, or another
 * named reference missing or holding another digest, is a disagreement.
 */
export function registryAccount(
  build: BuildNaming & Pick<Build, 'cacheRepository'>,
  reported: { imageDigest: string; provenance: Provenance },
  observed: BuildRegistryObservations,
): RegistryAccount {
  const references = buildReferences(build);
  const outputs = new Set(references.map((r) => r.repository));
  const own = (repository: string) =>
    outputs.has(repository) || repository === build.cacheRepository;
  const baseImages = observed.served.filter((o) => !own(o.repository));
  const lastPush = (repository: string, tag: string) =>
    observed.pushed.filter((o) => o.repository === repository && o.reference === tag).at(-1)
      ?.digest ?? null;
  const pushedDigest = lastPush(build.repository, build.id);
  const disagreements: string[] = [];
  if (pushedDigest === null) {
    disagreements.push(
      `the agent reported pushing ${reported.imageDigest}, but the registry saw no push of ${build.repository}:${build.id}`,
    );
  } else if (pushedDigest !== reported.imageDigest) {
    disagreements.push(
      `the agent reported pushing ${reported.imageDigest}, but the registry accepted ${pushedDigest} as ${build.repository}:${build.id}`,
    );
  }
  // Every other reference must carry the very image pushed under the build's own tag.
  const expected = pushedDigest ?? reported.imageDigest;
  for (const { repository, tag } of references) {
    if (repository === build.repository && tag === build.id) continue;
    const digest = lastPush(repository, tag);
    if (digest === null) {
      disagreements.push(`the registry saw no push of ${repository}:${tag}`);
    } else if (digest !== expected) {
      disagreements.push(
        `the registry accepted ${digest} as ${repository}:${tag}, not the build's ${expected}`,
      );
    }
  }
  const served = new Set(baseImages.map((o) => o.digest));
  for (const [ref, digest] of Object.entries(reported.provenance.baseImages)) {
    if (!served.has(digest)) {
      disagreements.push(
        `the agent reported base image ${ref} at ${digest}, which the registry never served to this build`,
      );
    }
  }
  return { baseImages, pushedDigest, disagreements };
}
