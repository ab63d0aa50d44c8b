/**
 * Work a process starts off the request path (fire-and-forget): an API key's last use, the built-in flows and the
 * messaging-limit tier of a tenant just created, a contact write deferred until its message commits, a cache reload.
 *
 * Shutdown drains it before closing PostgreSQL. Besides losing the write, a Prisma interactive transaction that is
 * still open when `$disconnect()` runs keeps its pooled connection checked out, idle after BEGIN, and the pool then
 * never ends: the process hung on SIGTERM until the close step's time limit (seen in tests as a 5–10 s close).
 */
export class BackgroundTasks {
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;

  /**
   * Tracks `work` until it settles. Its failure is the caller's to handle (a `.catch` on what this returns); an
   * untracked rejection is never raised from here. After `drain()` began, work is still tracked and awaited.
   */
  track<T>(work: Promise<T>): Promise<T> {
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    this.running.add(settled);
    void settled.then(() => this.running.delete(settled));
    return work;
  }

  /** Starts `fn` now unless shutting down (then it is skipped: returns undefined). */
  run<T>(fn: () => Promise<T>): Promise<T> | undefined {
    if (this.closed) return undefined;
    return this.track(fn());
  }

  get size(): number {
    return this.running.size;
  }

  /** Stops `run` from starting new work and waits until everything tracked has settled (including work it starts). */
  async drain(): Promise<void> {
    this.closed = true;
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
