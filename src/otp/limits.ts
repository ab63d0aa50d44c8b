import type { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { OtpError, type OtpErrorCode } from "./errors";

/**
 * Abuse limits, kept in Redis by rate-limiter-flexible so every API process shares them. Each limit is a
 * named window; its size comes from the tenant's settings at call time (limiters are cached per size).
 * A limit that is hit becomes an OtpError with Retry-After; a Redis failure propagates (the API answers 503).
 */
export type LimitName = "tenant" | "ip" | "prefix" | "number_sends" | "checks_number" | "checks_tenant" | "auth_failures" | "step_up_sends" | "step_up_checks";

export class Limits {
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private limiter(name: LimitName, points: number, durationSeconds: number): RateLimiterRedis {
    const id = `${name}:${points}:${durationSeconds}`;
    let l = this.limiters.get(id);
    if (!l) {
      l = new RateLimiterRedis({ storeClient: this.redis, keyPrefix: `${this.prefix}:rl:${name}`, points, duration: durationSeconds });
      this.limiters.set(id, l);
    }
    return l;
  }

  /**
   * Takes one point; throws `error` (default rate_limited) with Retry-After when the window is full. Returns what
   * is left of the window after this point.
   */
  async consume(name: LimitName, key: string, points: number, durationSeconds: number, error: OtpErrorCode = "rate_limited"): Promise<{ remaining: number; msBeforeNext: number }> {
    try {
      const res = await this.limiter(name, points, durationSeconds).consume(key, 1);
      return { remaining: res.remainingPoints, msBeforeNext: res.msBeforeNext };
    } catch (err) {
      if (err instanceof RateLimiterRes) throw new OtpError(error, Math.max(1, Math.ceil(err.msBeforeNext / 1000)));
      throw err;
    }
  }

  /** Gives one point back (a request that consumed it sent no code after all). */
  async refund(name: LimitName, key: string, points: number, durationSeconds: number): Promise<void> {
    await this.limiter(name, points, durationSeconds).reward(key, 1);
  }

  /** Points left in the window without taking one. */
  async remaining(name: LimitName, key: string, points: number, durationSeconds: number): Promise<{ remaining: number; msBeforeNext: number }> {
    const res = await this.limiter(name, points, durationSeconds).get(key);
    return { remaining: res ? Math.max(0, points - res.consumedPoints) : points, msBeforeNext: res?.msBeforeNext ?? 0 };
  }
}
