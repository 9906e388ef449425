/**
 * Runs at most one task per key at a time: a caller asking for a key that is under way gets
 * the same promise. The key is free again once the task settles, so a failure is not cached.
 */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  run(key: string, task: () => Promise<T>): Promise<T> {
    const running = this.running.get(key);
    if (running !== undefined) return running;
    const promise = task().finally(() => {
      this.running.delete(key);
    });
    this.running.set(key, promise);
    return promise;
  }

  /** How many keys are under way. */
  get size(): number {
    return this.running.size;
  }
}
