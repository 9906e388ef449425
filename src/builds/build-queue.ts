/** One queued build as the queue sees it. */
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
 * The in-memory build queue: FIFO within a tenant, round-robin between tenants, a global
 * concurrency limit and an optional per-tenant running cap. It only decides order; the
 * manager owns the builds. Rebuilt from SQLite at start.
 */
export class BuildQueue {
  private readonly waiting = new Map<string, QueueEntry[]>();
  /** Tenants in round-robin order; the head is served next. */
  private rotation: string[] = [];
  private readonly runningByTenant = new Map<string, number>();
  private runningTotal = 0;

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
    let n = 0;
    for (const list of this.waiting.values()) n += list.length;
    return n;
  }

  /** Builds handed out and not yet finished. */
  get running(): number {
    return this.runningTotal;
  }

  /** Builds a tenant has waiting. */
  queuedFor(tenant: string): number {
    return this.waiting.get(tenant)?.length ?? 0;
  }

  enqueue(entry: QueueEntry): void {
    const list = this.waiting.get(entry.tenant);
    if (list) list.push(entry);
    else {
      this.waiting.set(entry.tenant, [entry]);
      this.rotation.push(entry.tenant);
    }
  }

  /** Removes a waiting build; false when it was not waiting. */
  remove(id: string): boolean {
    for (const [tenant, list] of this.waiting) {
      const i = list.findIndex((e) => e.id === id);
      if (i === -1) continue;
      list.splice(i, 1);
      if (list.length === 0) this.dropTenant(tenant);
      return true;
    }
    return false;
  }

  has(id: string): boolean {
    for (const list of this.waiting.values()) if (list.some((e) => e.id === id)) return true;
    return false;
  }

  /**
   * Takes the next build allowed to run, counting it as running, or null when the global
   * limit is reached or every waiting tenant is at its cap.
   */
  next(): QueueEntry | null {
    if (this.runningTotal >= this.options.maxConcurrent) return null;
    for (let i = 0; i < this.rotation.length; i++) {
      const tenant = this.rotation[i];
      if (tenant === undefined) continue;
      const cap = this.options.maxRunningPerTenant;
      if (cap > 0 && (this.runningByTenant.get(tenant) ?? 0) >= cap) continue;
      const list = this.waiting.get(tenant);
      const entry = list?.shift();
      if (!list || !entry) continue;
      // The served tenant goes to the back of the rotation.
      this.rotation.splice(i, 1);
      if (list.length > 0) this.rotation.push(tenant);
      else this.waiting.delete(tenant);
      this.runningTotal += 1;
      this.runningByTenant.set(tenant, (this.runningByTenant.get(tenant) ?? 0) + 1);
      return entry;
    }
    return null;
  }

  /** A build handed out by next() has finished. */
  finished(tenant: string): void {
    const n = this.runningByTenant.get(tenant) ?? 0;
    if (n <= 0) return;
    this.runningTotal -= 1;
    if (n === 1) this.runningByTenant.delete(tenant);
    else this.runningByTenant.set(tenant, n - 1);
  }

  /**
   * 1-based place of a waiting build in the order the queue would serve (round-robin from the
   * current rotation, ignoring caps), or null when it is not waiting.
   */
  position(id: string): number | null {
    let position = 0;
    const cursors = this.rotation.map((tenant) => ({
      list: this.waiting.get(tenant) ?? [],
      at: 0,
    }));
    for (;;) {
      let progressed = false;
      for (const c of cursors) {
        const entry = c.list[c.at];
        if (!entry) continue;
        c.at += 1;
        position += 1;
        progressed = true;
        if (entry.id === id) return position;
      }
      if (!progressed) return null;
    }
  }

  private dropTenant(tenant: string): void {
    this.waiting.delete(tenant);
    this.rotation = this.rotation.filter((t) => t !== tenant);
  }
}
