import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { BlobPrefetcher } from './blob-prefetcher.js';
import { InflightBlob } from './inflight-blob.js';
import { seededName, type MirrorName } from './mirror-name.js';
import { SingleFlight } from './single-flight.js';
import { UpstreamClient } from './upstream-client.js';
import type { UpstreamCredentials } from './upstream-credentials.js';
import { UpstreamError } from './upstream-error.js';
import type { Clock } from '../../../common/time/clock.js';
import { MIRROR_NAMESPACE } from '../../auth/scopes.js';
import type { MirrorConfig } from '../../config/mirror-config.js';
import { syncPath } from '../../storage/sync-path.js';
import type { BlobStore } from '../blob-store.js';
import {
  digestOf,
  looksLikeDigest,
  parseDigest,
  tryParseDigest,
  type ParsedDigest,
} from '../digest.js';
import { parseManifest } from '../manifest-document.js';
import { OciError } from '../oci-error.js';
import type { RegistryStore, StoredManifest } from '../registry-store.js';

/** Blobs of one image prefetched at once (skopeo and the engines fetch a few at a time too). */
const PREFETCH_PER_IMAGE = 4;
/** Blobs prefetched at once over every image, so many cold pulls do not flood the upstream. */
const PREFETCH_TOTAL = 8;
/**
 * A manifest served from the store has its last use written at most once per this many
 * milliseconds: a warm pull then costs no write. Uses in between are kept in memory and
 * given to the evictor (unwrittenUse), so least-recently-used eviction stays exact.
 */
const USE_WRITE_INTERVAL_MS = 60_000;

/** Where a served manifest came from. */
export type ManifestSource = 'seeded' | 'mirror' | 'upstream' | 'stale';

/** A blob download under way: the upstream's answer pending, then the download itself. */
interface Download {
  running: Promise<InflightBlob>;
  download: InflightBlob | null;
}

/** Uses of manifests remembered before the stale ones are dropped (see used()). */
const MAX_REMEMBERED_USES = 4096;

/** A manifest the mirror serves, and the repository it is stored under. */
export interface MirroredManifest {
  manifest: StoredManifest;
  /** The local repository holding it (`library/<x>` when seeded, else the mirror's). */
  repository: string;
  source: ManifestSource;
}

/** Where a requested blob is: stored under a local repository, or being downloaded. */
export type MirroredBlob =
  { kind: 'stored'; repository: string } | { kind: 'downloading'; download: InflightBlob };

/** What a RegistryMirror needs. */
export interface RegistryMirrorOptions {
  config: MirrorConfig;
  /** Credentials per upstream name (read from the configured file at start). */
  credentials: ReadonlyMap<string, UpstreamCredentials>;
  store: RegistryStore;
  blobs: BlobStore;
  /** A directory the mirror owns for downloads in progress (emptied at start). */
  downloadsDir: string;
  maxManifestBytes: number;
  clock: Clock;
  logger: Logger;
  /** The fetch implementation for upstream requests; Node's global fetch unless given. */
  fetch?: typeof fetch;
  /** Called after a manifest or blob from an upstream was stored (the size limit is checked). */
  onFill?: () => void;
}

/**
 * The verified pull-through mirror behind `mirror/<upstream>/<repository>`. Manifests by
 * digest and blobs are content-addressed: once stored they are served without asking the
 * upstream again (and survive it going away). A tag's resolution is served from the store for
 * `tagTtlSeconds`, then asked again; an upstream that cannot be reached then falls back to
 * the last resolution. Nothing is stored before its digest is checked: manifests by hashing
 * their bytes, blobs while they stream (InflightBlob). Concurrent requests share one
 * upstream request per manifest reference and per blob; a blob already held by another mirrored
 * repository is linked rather than downloaded again. Docker Hub official images an
 * operator seeded into `library/` take precedence (seededName).
 */
export class RegistryMirror {
  private readonly options: RegistryMirrorOptions;
  private readonly clients = new Map<string, UpstreamClient>();
  private readonly manifests = new SingleFlight<MirroredManifest>();
  private readonly downloads = new Map<string, Download>();
  private readonly prefetcher: BlobPrefetcher<{ name: MirrorName; digest: ParsedDigest }>;
  /** Per `repository@digest`: when its last use was written, and a later use not written. */
  private readonly uses = new Map<string, { written: number; unwritten: number | null }>();
  private counter = 0;

  private constructor(options: RegistryMirrorOptions) {
    this.options = options;
    this.prefetcher = new BlobPrefetcher({
      perImage: PREFETCH_PER_IMAGE,
      total: PREFETCH_TOTAL,
      fetch: async ({ name, digest }) => {
        const found = await this.blob(name, digest);
        if (found.kind === 'downloading') await found.download.done;
      },
      describe: ({ name, digest }) => ({ repository: name.local, digest: digest.text }),
      logger: options.logger,
    });
    for (const upstream of options.config.upstreams) {
      this.clients.set(
        upstream.name,
        new UpstreamClient({
          name: upstream.name,
          endpoint: upstream.endpoint,
          credentials: options.credentials.get(upstream.name) ?? null,
          timeoutMs: options.config.upstreamTimeoutSeconds * 1000,
          maxManifestBytes: options.maxManifestBytes,
          clock: options.clock,
          ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        }),
      );
    }
  }

  /** Creates the mirror; downloads a previous run left unfinished are removed. */
  static async create(options: RegistryMirrorOptions): Promise<RegistryMirror> {
    await rm(options.downloadsDir, { recursive: true, force: true });
    await mkdir(options.downloadsDir, { recursive: true });
    return new RegistryMirror(options);
  }

  /** Names of the configured upstreams. */
  get upstreams(): string[] {
    return [...this.clients.keys()];
  }

  /** Downloads under way (for tests and metrics). */
  get downloadsInFlight(): number {
    return this.downloads.size;
  }

  /** Resolves a tag or digest of a mirrored repository to a stored manifest. */
  async manifest(name: MirrorName, reference: string): Promise<MirroredManifest> {
    const { store } = this.options;
    const seeded = seededName(name);
    if (looksLikeDigest(reference)) {
      if (seeded !== null) {
        const manifest = store.getManifest(seeded, reference);
        if (manifest !== null) return { manifest, repository: seeded, source: 'seeded' };
      }
      const manifest = store.getManifest(name.local, reference);
      if (manifest !== null)
        return this.used({ manifest, repository: name.local, source: 'mirror' });
      return this.manifests.run(`${name.local}@${reference}`, () =>
        this.fetchManifest(name, reference),
      );
    }
    if (seeded !== null) {
      const digest = store.resolveTag(seeded, reference);
      const manifest = digest === null ? null : store.getManifest(seeded, digest);
      if (manifest !== null) return { manifest, repository: seeded, source: 'seeded' };
    }
    const cached = store.tagResolution(name.local, reference);
    const cachedManifest = cached === null ? null : store.getManifest(name.local, cached.digest);
    if (cached !== null && cachedManifest !== null) {
      const age = this.options.clock.now().getTime() - cached.updatedAt.getTime();
      if (age < this.options.config.tagTtlSeconds * 1000) {
        return this.used({ manifest: cachedManifest, repository: name.local, source: 'mirror' });
      }
    }
    try {
      return await this.manifests.run(`${name.local}:${reference}`, () =>
        this.fetchManifest(name, reference),
      );
    } catch (err) {
      const upstreamDown =
        err instanceof UpstreamError &&
        (err.failure === 'unreachable' || err.failure === 'rate_limited');
      const noUpstream = err instanceof OciError && err.code === 'NAME_UNKNOWN';
      if (cachedManifest === null || !(upstreamDown || noUpstream)) throw err;
      this.options.logger.warn(
        { err, repository: name.local, tag: reference, digest: cachedManifest.digest },
        'mirror: upstream unavailable, serving the last resolution of the tag',
      );
      return this.used({ manifest: cachedManifest, repository: name.local, source: 'stale' });
    }
  }

  /**
   * Renews the last use of a mirrored manifest served from the store (eviction is LRU): written
   * when the last write is USE_WRITE_INTERVAL_MS old, else kept in memory (unwrittenUse).
   */
  private used(served: MirroredManifest): MirroredManifest {
    const key = `${served.repository}@${served.manifest.digest}`;
    const now = this.options.clock.now().getTime();
    const use = this.uses.get(key);
    if (use !== undefined && now - use.written < USE_WRITE_INTERVAL_MS) {
      use.unwritten = now;
      return served;
    }
    this.options.store.touchManifest(served.repository, served.manifest.digest);
    if (this.uses.size >= MAX_REMEMBERED_USES) this.forgetWrittenUses(now);
    this.uses.set(key, { written: now, unwritten: null });
    return served;
  }

  /** Drops the uses whose write is old and which were not used since (they tell nothing). */
  private forgetWrittenUses(now: number): void {
    for (const [key, use] of this.uses) {
      if (use.unwritten === null && now - use.written >= USE_WRITE_INTERVAL_MS) {
        this.uses.delete(key);
      }
    }
  }

  /**
   * The last use of a mirrored manifest that is not written to the store yet (a use within
   * USE_WRITE_INTERVAL_MS of the last written one), or null; the evictor takes the later of it
   * and the stored one.
   */
  unwrittenUse(repository: string, digest: string): Date | null {
    const at = this.uses.get(`${repository}@${digest}`)?.unwritten ?? null;
    return at === null ? null : new Date(at);
  }

  /**
   * Starts fetching, in the background, the blobs of an image manifest a client was just
   * served and the mirror does not hold yet, so the client's blob requests that follow join
   * downloads already under way (or find the blobs stored): the upstream round trips overlap
   * instead of following one another. Nothing for an index (a client picks one platform; its
   * manifest then prefetches), a seeded image, or when the blobs would take the mirror over
   * its size limit. Each blob is still fetched once: a prefetch and a client share a download.
   */
  prefetch(name: MirrorName, served: MirroredManifest): void {
    if (served.source === 'seeded') return;
    const { store, config } = this.options;
    let sizes: Map<string, number>;
    try {
      // An index names no blobs (a client picks one platform; its manifest prefetches then).
      ({ blobSizes: sizes } = parseManifest(served.manifest.content, served.manifest.mediaType));
    } catch {
      return;
    }
    const missing = [...sizes].filter(([d]) => !store.hasLinkedBlob(name.local, d));
    if (missing.length === 0) return;
    if (config.maxBytes > 0) {
      const bytes = missing.reduce((sum, [, size]) => sum + size, 0);
      if (store.mirrorUsageBytes() + bytes > config.maxBytes) return;
    }
    this.prefetcher.prefetch(missing.map(([d]) => ({ name, digest: parseDigest(d) })));
  }

  /** Prefetches running or waiting (for tests). */
  get prefetchesPending(): number {
    return this.prefetcher.pending;
  }

  /**
   * Finds a blob of a mirrored repository: stored (seeded `library/` first), else downloaded
   * from the upstream — one download per repository and digest however many ask at once.
   * Resolves once the upstream answered with the blob's headers, so its errors are known.
   */
  async blob(name: MirrorName, digest: ParsedDigest): Promise<MirroredBlob> {
    const { store } = this.options;
    const seeded = seededName(name);
    if (seeded !== null && store.linkedBlobSize(seeded, digest.text) !== null) {
      return { kind: 'stored', repository: seeded };
    }
    if (store.linkedBlobSize(name.local, digest.text) !== null) {
      return { kind: 'stored', repository: name.local };
    }
    // A layer another mirrored repository already holds (images share their base layers) is
    // linked, not downloaded again. Only the mirror namespace is looked at: every credential
    // that may pull here may pull there, whereas a tenant's repository may be private.
    if (store.blobLinkedUnder(`${MIRROR_NAMESPACE}/`, digest.text)) {
      store.linkBlob(name.local, digest.text);
      return { kind: 'stored', repository: name.local };
    }
    const key = `${name.local}@${digest.text}`;
    let entry = this.downloads.get(key);
    // A download that failed is not joined, even before it is forgotten: this request asks the
    // upstream again rather than inherit an error it did not see (a prefetch's, say).
    if (entry === undefined || entry.download?.failed === true) {
      const started: Download = { running: this.startDownload(name, digest), download: null };
      entry = started;
      this.downloads.set(key, started);
      const forget = () => {
        if (this.downloads.get(key) === started) this.downloads.delete(key);
      };
      started.running.then((download) => {
        started.download = download;
        download.done.then(forget, forget);
      }, forget);
    }
    return { kind: 'downloading', download: await entry.running };
  }

  /**
   * Stops every download under way and waits until each has settled, so nothing touches the
   * store once the registry is closed. Safe to call twice.
   */
  async close(): Promise<void> {
    // Stops the prefetches first (in this tick), so none starts a download after the list below.
    const prefetches = this.prefetcher.close();
    const running = [...this.downloads.values()].map((d) => d.running);
    const settled = await Promise.allSettled(running);
    const downloads = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    for (const d of downloads) d.abort(new Error('the registry is shutting down'));
    await Promise.allSettled(downloads.map((d) => d.done));
    await prefetches;
  }

  private client(name: MirrorName): UpstreamClient {
    const client = this.clients.get(name.upstream);
    if (client !== undefined) return client;
    const message =
      this.clients.size === 0
        ? `the mirror has no upstreams (air-gapped): ${name.upstream}/${name.repository} is not stored here`
        : `no upstream named ${name.upstream} is configured (configured: ${this.upstreams.join(', ')})`;
    throw new OciError('NAME_UNKNOWN', message, {
      detail: { upstream: name.upstream, repository: name.repository, cause: 'not_configured' },
    });
  }

  private async fetchManifest(name: MirrorName, reference: string): Promise<MirroredManifest> {
    const client = this.client(name);
    const target = { upstream: name.upstream, repository: name.repository, reference };
    const got = await client.manifest(name.repository, reference);
    const byDigest = tryParseDigest(reference);
    let digest: string;
    if (byDigest !== null) {
      digest = digestOf(byDigest.algorithm, got.bytes);
      if (digest !== byDigest.text) {
        throw new UpstreamError(
          'invalid',
          target,
          `upstream ${name.upstream} sent a manifest for ${name.repository}@${reference} whose digest is ${digest}; it was refused`,
        );
      }
    } else {
      digest = digestOf('sha256', got.bytes);
      const claimed = got.claimedDigest === undefined ? null : tryParseDigest(got.claimedDigest);
      if (claimed !== null && digestOf(claimed.algorithm, got.bytes) !== claimed.text) {
        throw new UpstreamError(
          'invalid',
          target,
          `upstream ${name.upstream} sent a manifest for ${name.repository}:${reference} that does not match its Docker-Content-Digest ${claimed.text}; it was refused`,
        );
      }
    }
    let doc;
    try {
      doc = parseManifest(got.bytes, got.contentType);
    } catch (err) {
      throw new UpstreamError(
        'invalid',
        target,
        `upstream ${name.upstream} sent a manifest for ${name.repository}:${reference} the registry cannot serve: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    const manifest: StoredManifest = {
      digest,
      mediaType: doc.mediaType,
      artifactType: doc.artifactType,
      subjectDigest: doc.subjectDigest,
      annotations: doc.annotations,
      size: got.bytes.length,
      content: got.bytes,
    };
    this.options.store.putManifest(name.local, manifest, byDigest === null ? [reference] : []);
    this.options.logger.info(
      { repository: name.local, reference, digest, mediaType: doc.mediaType },
      'mirror: manifest fetched from upstream',
    );
    this.options.onFill?.();
    return { manifest, repository: name.local, source: 'upstream' };
  }

  private async startDownload(name: MirrorName, digest: ParsedDigest): Promise<InflightBlob> {
    const client = this.client(name);
    const upstream = await client.blob(name.repository, digest.text);
    this.counter += 1;
    const file = path.join(
      this.options.downloadsDir,
      `${process.pid}-${this.counter}-${digest.hex.slice(0, 16)}`,
    );
    const { store, blobs } = this.options;
    return InflightBlob.start({
      file,
      digest,
      upstream,
      target: { upstream: name.upstream, repository: name.repository },
      idleTimeoutMs: this.options.config.upstreamTimeoutSeconds * 1000,
      logger: this.options.logger,
      commit: async (from, size) => {
        await blobs.arrive(digest, async () => {
          const to = blobs.blobPath(digest);
          await mkdir(path.dirname(to), { recursive: true });
          await rename(from, to);
          await syncPath(path.dirname(to));
          store.addBlob(name.local, digest.text, size);
        });
        this.options.logger.info(
          { repository: name.local, digest: digest.text, size },
          'mirror: blob fetched from upstream',
        );
        this.options.onFill?.();
      },
    });
  }
}
