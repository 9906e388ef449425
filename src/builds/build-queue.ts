/** What the queue needs of a waiting build; callers may carry more (the build itself). */
export interface QueueEntry {
  id: string;
  tenant: string;
}

/** Queue policy (config.builds). */
export interface BuildQueueOptions {
  maxConcurrent: number;
  /** 0 = no per-tenant cap beyond the global one. */
  maxRunningPerTenant: number;
}

/**
 * The in-memory build queue: FIFO within a tenant, round-robin between tenants (the waiting
 * tenant served least recently goes next, so a tenant that just had a build started waits for
 * every other tenant's turn even if its queue emptied meanwhile), a global concurrency limit
 * and an optional per-tenant running cap. It holds each waiting entry exactly once (the
 * manager queues the build itself with it, so no second map can drift from the queue's
 * order). Rebuilt from SQLite at start.
 */
export class BuildQueue<T extends QueueEntry = QueueEntry> {
  private readonly waiting = new Map<string, { entry: T; seq: number }[]>();
  /** Id → waiting entry, for lookups without walking the tenant lists. */
  private readonly byId = new Map<string, T>();
  /** Tenant → sequence number of its last served build; kept while it waits or runs. */
  private readonly served = new Map<string, number>();
  private readonly runningByTenant = new Map<string, number>();
  private runningTotal = 0;
  private serveCounter = 0;
  private enqueueCounter = 0;

  constructor(private readonly options: BuildQueueOptions) {
    if (!Number.isInteger(options.maxConcurrent) || options.maxConcurrent < 1) {
      throw new RangeError('maxConcurrent must be a positive whole number');
    }
    if (!Number.isInteger(options.maxRunningPerTenant) || options.maxRunningPerTenant < 0) {
      throw new RangeError('maxRunningPerTenant must be a whole number >= 0');
    }
  }

  /** Builds waiting. */
  get length(): number {
    return this.byId.size;
  }

  /** Builds handed out and not yet finished. */
  get running(): number {
    return this.runningTotal;
  }

  /** Builds a tenant has waiting. */
  queuedFor(tenant: string): number {
    return this.waiting.get(tenant)?.length ?? 0;
  }

  enqueue(entry: T): void {
    if (this.byId.has(entry.id)) throw new Error(`${entry.id} is already queued`);
    this.byId.set(entry.id, entry);
    const item = { entry, seq: this.enqueueCounter++ };
    const list = this.waiting.get(entry.tenant);
    if (list) list.push(item);
    else this.waiting.set(entry.tenant, [item]);
  }

  /** Removes a waiting build and returns it; null when it was not waiting. */
  remove(id: string): T | null {
    const entry = this.byId.get(id);
    if (entry === undefined) return null;
    this.byId.delete(id);
    const list = this.waiting.get(entry.tenant) ?? [];
    const i = list.findIndex((e) => e.entry.id === id);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.waiting.delete(entry.tenant);
    this.forgetIfIdle(entry.tenant);
    return entry;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** The waiting entry with this id, if any. */
  get(id: string): T | undefined {
    return this.byId.get(id);
  }

  /** Every waiting entry, in no particular order (a snapshot: safe to remove while iterating). */
  entries(): T[] {
    return [...this.byId.values()];
  }

  /**
   * Takes the next build allowed to run, counting it as running, or null when the global
   * limit is reached or every waiting tenant is at its cap.
   */
  next(): T | null {
    if (this.runningTotal >= this.options.maxConcurrent) return null;
    const cap = this.options.maxRunningPerTenant;
    const tenant = this.pick(
      this.served,
      (t) => cap === 0 || (this.runningByTenant.get(t) ?? 0) < cap,
      (t) => this.waiting.get(t)?.[0]?.seq ?? Number.MAX_SAFE_INTEGER,
    );
    if (tenant === null) return null;
    const list = this.waiting.get(tenant);
    const item = list?.shift();
    if (!list || !item) return null;
    if (list.length === 0) this.waiting.delete(tenant);
    this.byId.delete(item.entry.id);
    this.served.set(tenant, this.serveCounter++);
    this.runningTotal += 1;
    this.runningByTenant.set(tenant, (this.runningByTenant.get(tenant) ?? 0) + 1);
    return item.entry;
  }

  /** A build handed out by next() has finished. */
  finished(tenant: string): void {
    const n = this.runningByTenant.get(tenant) ?? 0;
    if (n <= 0) return;
    this.runningTotal -= 1;
    if (n === 1) this.runningByTenant.delete(tenant);
    else this.runningByTenant.set(tenant, n - 1);
    this.forgetIfIdle(tenant);
  }

  /**
   * 1-based place of a waiting build in the order the queue would serve it (round-robin from
   * now, ignoring caps), or null when it is not waiting. Round-robin serves the waiting
   * tenants in one fixed cycle (least recently served first, as next() picks), one build each
   * per round, so the k-th build of a tenant comes after k rounds of every tenant's first
   * builds and after the tenants ahead of it in round k: O(tenants), not O(queue).
   */
  position(id: string): number | null {
    const entry = this.byId.get(id);
    if (entry === undefined) return null;
    const k = this.waiting.get(entry.tenant)?.findIndex((e) => e.entry.id === id) ?? -1;
    if (k === -1) return null;
    const cycle = [...this.waiting.entries()]
      .map(([tenant, list]) => ({
        tenant,
        count: list.length,
        served: this.served.get(tenant) ?? -1,
        head: list[0]?.seq ?? Number.MAX_SAFE_INTEGER,
      }))
      .sort((a, b) => a.served - b.served || a.head - b.head);
    let position = 1;
    let ahead = true;
    for (const t of cycle) {
      position += Math.min(t.count, k);
      if (t.tenant === entry.tenant) ahead = false;
      else if (ahead && t.count > k) position += 1;
    }
    return position;
  }

  /** The eligible waiting tenant served least recently (never served first; ties by age). */
  private pick(
    served: ReadonlyMap<string, number>,
    eligible: (tenant: string) => boolean,
    headSeq: (tenant: string) => number,
  ): string | null {
    let best: string | null = null;
    let bestKey: [number, number] = [Infinity, Infinity];
    for (const tenant of this.waiting.keys()) {
      if (!eligible(tenant)) continue;
      const key: [number, number] = [served.get(tenant) ?? -1, headSeq(tenant)];
      if (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) {
        best = tenant;
        bestKey = key;
      }
    }
    return best;
  }

  private forgetIfIdle(tenant: string): void {
    if (!this.waiting.has(tenant) && !this.runningByTenant.has(tenant)) {
      this.served.delete(tenant);
    }
  }
}
