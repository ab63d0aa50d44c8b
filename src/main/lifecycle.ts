import type { Logger } from "../observability/logger";

/**
 * Graceful shutdown: on SIGTERM/SIGINT stop taking requests, let in-flight jobs finish (worker.close waits for
 * them), then close clients. A second signal exits at once.
 */
export function onShutdown(logger: Logger, steps: (() => Promise<unknown>)[]): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, "shutting down");
    for (const step of steps) {
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
