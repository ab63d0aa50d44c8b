import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { recordAudit } from "../audit/audit";
import { transaction, type PrismaClient } from "../db/prisma";
import { EventPublisher } from "../events/publisher";
import type { Logger } from "../observability/logger";
import { OtpError } from "../otp/errors";
import type { Clock } from "../shared/clock";

/**
 * The daily cap on codes (tenant setting `limits.codesPerDay`, docs/limits.md): every code sent — a new
 * verification or a re-send, from the API or from the chat — counts against one Redis counter per tenant and UTC
 * day. The check and the count are one Lua script, one round trip: under the cap the code is counted; at the cap
 * the request is refused (`429 daily_limit_reached`, Retry-After = seconds to the next midnight UTC) and nothing is
 * counted. The business hears `limit.daily_codes_reached` once per tenant and day (a SET NX flag in the same
 * script): when the count reaches the cap, or at the first refusal if that was missed.
 */
const SCRIPT = `
local cap = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= cap then
  local first = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ttl)
  if first then return {0, n, 1} end
  return {0, n, 0}
end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ttl) end
if n >= cap and redis.call('SET', KEYS[2], '1', 'NX', 'EX', ttl) then return {1, n, 1} end
return {1, n, 0}
`;
const SCRIPT_SHA = createHash("sha1").update(SCRIPT).digest("hex");

/** What a counted code needs to be given back when the send fails after all. */
export interface DailyToken {
  key: string;
}

export interface DailyCodesDeps {
  redis: Redis;
  prefix: string;
  prisma: PrismaClient;
  clock: Clock;
  logger: Logger;
  /** hands event rows to the events queue after commit (EventPublisher.dispatch) */
  dispatch: (ids: Array<string | null>) => Promise<void>;
}

/** The UTC day of an instant (YYYY-MM-DD) and the next midnight UTC. */
export function utcDay(now: Date): { day: string; next: Date } {
  const day = now.toISOString().slice(0, 10);
  const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
  return { day, next };
}

export class DailyCodes {
  constructor(private readonly deps: DailyCodesDeps) {}

  private keys(tenantId: string, day: string): [string, string] {
    // one hash slot per tenant (Redis Cluster: a script's keys must share it)
    const base = `${this.deps.prefix}:codes-day:{${tenantId}}:${day}`;
    return [base, `${base}:announced`];
  }

  /** Today's count for a tenant (for the admin API and tests). */
  async count(tenantId: string): Promise<number> {
    const [key] = this.keys(tenantId, utcDay(this.deps.clock.now()).day);
    return Number((await this.deps.redis.get(key)) ?? 0);
  }

  /**
   * Counts one code for the tenant, or throws `OtpError("daily_limit_reached")` with Retry-After when today's cap
   * is reached. Returns a token for `refund` (a send that fails after being counted gives its place back).
   */
  async consume(tenantId: string, cap: number): Promise<DailyToken> {
    const now = this.deps.clock.now();
    const { day, next } = utcDay(now);
    const toMidnight = Math.max(1, Math.ceil((next.getTime() - now.getTime()) / 1000));
    const keys = this.keys(tenantId, day);
    const args = [String(cap), String(toMidnight + 3600)];
    let res: unknown;
    try {
      res = await this.deps.redis.evalsha(SCRIPT_SHA, 2, ...keys, ...args);
    } catch (err) {
      if (!/NOSCRIPT/.test(err instanceof Error ? err.message : String(err))) throw err;
      res = await this.deps.redis.eval(SCRIPT, 2, ...keys, ...args);
    }
    const [allowed, count, announce] = (res as number[]).map(Number) as [number, number, number];
    if (announce === 1) await this.announce({ tenantId, day, cap, count, resetsAt: next, now, flagKey: keys[1] });
    if (allowed !== 1) throw new OtpError("daily_limit_reached", toMidnight);
    return { key: keys[0] };
  }

  /** Gives a counted place back (best effort: a Redis error only leaves the count one higher). */
  async refund(token: DailyToken | null | undefined): Promise<void> {
    if (!token) return;
    await this.deps.redis.decr(token.key).catch((err: Error) => this.deps.logger.warn({ err: err.message }, "daily code count not given back"));
  }

  /** The event and audit row, once per tenant and day; on failure the flag is cleared so a later code tries again. */
  private async announce(a: { tenantId: string; day: string; cap: number; count: number; resetsAt: Date; now: Date; flagKey: string }): Promise<void> {
    const data = { day: a.day, limit: a.cap, count: a.count, resetsAt: a.resetsAt.toISOString() };
    try {
      const id = await transaction(this.deps.prisma, async (tx) => {
        await recordAudit(tx, { tenantId: a.tenantId, type: "limit.daily_codes_reached", actor: "system", data, at: a.now });
        return EventPublisher.publish(tx, { tenantId: a.tenantId, type: "limit.daily_codes_reached", data, now: a.now });
      });
      this.deps.logger.warn({ tenantId: a.tenantId, ...data }, "daily code cap reached: codes are refused until midnight UTC");
      await this.deps.dispatch([id]).catch((err: Error) => this.deps.logger.warn({ err: err.message }, "limit event not dispatched (the events sweep will)"));
    } catch (err) {
      this.deps.logger.error({ tenantId: a.tenantId, err: err instanceof Error ? err.message : String(err) }, "daily code cap event not recorded");
      await this.deps.redis.del(a.flagKey).catch(() => undefined);
    }
  }
}
