import type { Logger } from "./logger";

/**
 * Connection errors during an outage without a line per reconnect attempt: a client retrying every few hundred ms
 * (and each queue on it) would otherwise write thousands of identical warnings. The first error of a source is
 * logged at once, the same error again at most every `everyMs` with how many were not logged, and the recovery once.
 */
export function outageLog(logger: Logger, everyMs = 30_000, now: () => number = Date.now) {
  const seen = new Map<string, { at: number; suppressed: number }>();
  const failing = new Set<string>();
  return {
    error(source: string, err: Error, fields: Record<string, unknown> = {}): void {
      failing.add(source);
      const key = `${source}\u0000${err.message}`;
      const last = seen.get(key);
      const t = now();
      if (last && t - last.at < everyMs) {
        last.suppressed++;
        return;
      }
      seen.set(key, { at: t, suppressed: 0 });
      logger.warn({ ...fields, err: err.message, ...(last?.suppressed ? { repeated: last.suppressed } : {}) }, `${source} connection error`);
    },
    /** the source answers again (ioredis "ready"): logged once if it had failed */
    back(source: string): void {
      if (!failing.delete(source)) return;
      for (const k of [...seen.keys()]) if (k.startsWith(`${source}\u0000`)) seen.delete(k);
      logger.info({ source }, `${source} connection ready again`);
    },
  };
}
