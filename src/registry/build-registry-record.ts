import type { Database, Statement } from 'better-sqlite3';
import { BUILD_SUBJECT_PREFIX } from './registry-token-service.js';
import type { Clock } from '../../common/time/clock.js';

/** One manifest the registry served to a build, or saw the build push. */
export interface RegistryObservation {
  /** The upstream a mirrored image came from (`docker.io`), or null for Kiln's own repositories. */
  upstream: string | null;
  /** The repository as the registry names it: `mirror/docker.io/library/node`, `acme/web`. */
  repository: string;
  /** The tag or digest the build asked for (served) or pushed under (pushed). */
  reference: string;
  /** The manifest digest the registry answered with, or was sent. */
  digest: string;
}

/** Everything the registry recorded for one build, in the order it happened. */
export interface BuildRegistryObservations {
  served: RegistryObservation[];
  pushed: RegistryObservation[];
}

interface Row {
  kind: 'served' | 'pushed';
  upstream: string | null;
  repository: string;
  reference: string;
  digest: string;
}

/**
 * The registry's own record, per build token, of the manifests it served and received
 * (table `build_registry_record`). The registry writes it as requests succeed; the build
 * manager reads it when the build ends, so the result's base images and pushed digest are what
 * the host saw, whatever the agent in the VM reports. Requests under other credentials are not
 * recorded. `forget()` removes a build's rows once they are in its result.
 */
export class BuildRegistryRecord {
  private readonly insert: Statement<
    [string, string, string | null, string, string, string, number]
  >;
  private readonly select: Statement<[string], Row>;
  private readonly remove: Statement<[string]>;
  private readonly servedAll: Statement<[], { repository: string; digest: string }>;

  constructor(
    db: Database,
    private readonly clock: Clock,
  ) {
    this.insert = db.prepare(
      `INSERT OR IGNORE INTO build_registry_record
         (build_id, kind, upstream, repository, reference, digest, at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.select = db.prepare(
      `SELECT kind, upstream, repository, reference, digest FROM build_registry_record
       WHERE build_id = ? ORDER BY id`,
    );
    this.remove = db.prepare('DELETE FROM build_registry_record WHERE build_id = ?');
    this.servedAll = db.prepare(
      "SELECT DISTINCT repository, digest FROM build_registry_record WHERE kind = 'served'",
    );
  }

  /** Records a manifest served to `subject`, when it is a build's token. */
  served(subject: string, observation: RegistryObservation): void {
    this.write(subject, 'served', observation);
  }

  /** Records a manifest `subject` pushed, when it is a build's token. */
  pushed(subject: string, observation: RegistryObservation): void {
    this.write(subject, 'pushed', observation);
  }

  /** What the registry recorded for the build. */
  of(buildId: string): BuildRegistryObservations {
    const out: BuildRegistryObservations = { served: [], pushed: [] };
    for (const row of this.select.all(buildId)) {
      out[row.kind].push({
        upstream: row.upstream,
        repository: row.repository,
        reference: row.reference,
        digest: row.digest,
      });
    }
    return out;
  }

  /**
   * Every manifest served to a build whose rows are still held, that is to a build in flight
   * (rows are forgotten when a build ends): mirror eviction keeps these.
   */
  servedManifests(): { repository: string; digest: string }[] {
    return this.servedAll.all();
  }

  /** Removes the build's rows (its result holds what mattered). */
  forget(buildId: string): void {
    this.remove.run(buildId);
  }

  private write(subject: string, kind: Row['kind'], o: RegistryObservation): void {
    if (!subject.startsWith(BUILD_SUBJECT_PREFIX)) return;
    const buildId = subject.slice(BUILD_SUBJECT_PREFIX.length);
    this.insert.run(
      buildId,
      kind,
      o.upstream,
      o.repository,
      o.reference,
      o.digest,
      this.clock.now().getTime(),
    );
  }
}
