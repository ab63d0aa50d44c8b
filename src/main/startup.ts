import type { Logger } from "../observability/logger";

/**
 * Start-up that never waits for PostgreSQL or Redis before the process listens (docs/deploy.md, *Start-up*): the
 * composition roots listen first (`/healthz` answers at once), then run the steps that need the backing services
 * (the default tenant, the workers) in the background, each retried until it succeeds. Until they have, `/readyz`
 * answers 503 naming what is pending; a SIGTERM meanwhile stops the retries.
 */
/** The steps of the composition roots, by the backing service each waits for (/readyz names them under it). */
export const STARTUP_STEPS = { tenant: "default tenant", workers: "workers" } as const;

export class Startup {
  private readonly pending = new Set<string>();
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly logger: Logger) {}

  /** What is not done yet ("default tenant", "workers"; of `among` only, when given), or null once it all is. */
  notReady(among?: string[]): string | null {
    const pending = [...this.pending].filter((p) => !among || among.includes(p));
    return pending.length === 0 ? null : `starting: ${pending.join(", ")} not ready yet`;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Stops every retry (shutdown): a step still retrying resolves undefined. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /**
   * Runs `fn` until it succeeds, backing off from 250 ms to 5 s; the first failure and then one every 30 s are
   * logged (one line, not one per attempt), and the success after a failure. Resolves undefined if stopped first.
   */
  async step<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    this.pending.add(name);
    let delay = 250;
    let failures = 0;
    let loggedAt = 0;
    const since = Date.now();
    try {
      while (!this.stopped) {
        try {
          const value = await fn();
          if (failures > 0) this.logger.info({ step: name, attempts: failures + 1, waitedMs: Date.now() - since }, "start-up step done after retries");
          return value;
        } catch (err) {
          failures++;
          if (Date.now() - loggedAt >= 30_000) {
            loggedAt = Date.now();
            this.logger.warn({ step: name, attempts: failures, err: shortError(err) }, "start-up step failed: retrying (the process stays up, /readyz 503)");
          }
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        delay = Math.min(5_000, delay * 2);
      }
      return undefined;
    } finally {
      this.pending.delete(name);
    }
  }

  /** Marks `name` pending until `work` settles (a step that waits by itself, like BullMQ's waitUntilReady). */
  async track<T>(name: string, work: Promise<T>): Promise<T> {
    this.pending.add(name);
    try {
      return await work;
    } finally {
      this.pending.delete(name);
    }
  }
}

/** One line of an error for a log or a readiness answer: Prisma's messages span lines and quote source code. */
export function shortError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const lines = message.split("\n").map((l) => l.trim()).filter(Boolean);
  return (lines[lines.length - 1] ?? "error").slice(0, 200);
}
