/** Runs a callback later; returns a function that cancels it. Injected so tests control time. */
export interface Scheduler {
  setTimeout(callback: () => void, ms: number): () => void;
}

export const systemScheduler: Scheduler = {
  setTimeout(callback, ms) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return () => {
      clearTimeout(timer);
    };
  },
};
