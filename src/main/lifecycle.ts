import type { Logger } from "../observability/logger";

/**
 * Graceful shutdown: on SIGTERM/SIGINT stop taking requests, let in-flight jobs finish (worker.close waits for
 * them), then close clients. A second signal exits at once.
 *
 * `deadlineMs` (SHUTDOWN_GRACE_MS) bounds the whole of it: whatever a step still waits for then (a Redis or a
 * PostgreSQL that does not answer, a job that does not end), the process exits 0 with a warning naming the step.
 * What it held runs again elsewhere (jobs once their locks lapse; webhooks not answered 200 are redelivered).
 * `onSignal` runs first (start-up retries stop).
 */
export function onShutdown(logger: Logger, steps: (() => Promise<unknown>)[], opts: { deadlineMs?: number; onSignal?: () => void } = {}): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal, deadlineMs: opts.deadlineMs }, "shutting down");
    let current = -1;
    if (opts.deadlineMs !== undefined) {
      const startedAt = Date.now();
      setTimeout(() => {
        logger.warn({ deadlineMs: opts.deadlineMs, step: steps[current]?.name || current, ms: Date.now() - startedAt }, "shutdown deadline reached: exiting with a step unfinished");
        logger.flush?.();
        process.exit(0);
      }, opts.deadlineMs);
    }
    opts.onSignal?.();
    for (const step of steps) {
      current++;
      try {
        await step();
      } catch (err) {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, "shutdown step failed");
      }
    }
    logger.flush?.();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

/** Loads the configuration or prints every bad variable and exits. */
export function configOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    // eslint-disable-next-line no-console
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
