import { AppError } from '../errors/app-error.js';

/**
 * Caps how many build uploads are being received and inspected at once, per tenant and in all.
 * Inspecting costs a core while it decompresses (a small gzip can unpack to gigabytes before
 * its limit is reached), so one tenant must not hold every core with a burst of uploads. An
 * upload over a cap is answered 429 at once, before its body is read.
 */
export class UploadSlots {
  private readonly perTenant: number;
  private readonly total: number;
  private readonly byTenant = new Map<string, number>();
  private inUse = 0;

  constructor(options: { perTenant: number; total: number }) {
    if (!(options.perTenant >= 1) || !(options.total >= 1)) {
      throw new Error('upload caps must be at least 1');
    }
    this.perTenant = options.perTenant;
    this.total = options.total;
  }

  /**
   * Takes a slot for `tenant` (TENANT_UPLOADS_BUSY or UPLOADS_BUSY when a cap is reached) and
   * returns its release, which is safe to call twice.
   */
  acquire(tenant: string): () => void {
    const held = this.byTenant.get(tenant) ?? 0;
    if (held >= this.perTenant) {
      throw new AppError('TENANT_UPLOADS_BUSY', undefined, { details: { limit: this.perTenant } });
    }
    if (this.inUse >= this.total) {
      throw new AppError('UPLOADS_BUSY', undefined, { details: { limit: this.total } });
    }
    this.byTenant.set(tenant, held + 1);
    this.inUse += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= 1;
      const left = (this.byTenant.get(tenant) ?? 1) - 1;
      if (left === 0) this.byTenant.delete(tenant);
      else this.byTenant.set(tenant, left);
    };
  }
}
