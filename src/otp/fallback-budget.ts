import type { Redis } from "ioredis";
import { recordAudit } from "../audit/audit";
import { transaction, type PrismaClient } from "../db/prisma";
import { EventPublisher } from "../events/publisher";
import type { Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import type { TenantSettings } from "../tenants/settings";

export type PaidChannel = "sms" | "voice";

/**
 * The daily spend cap on paid code channels (docs/templates.md): each SMS or voice code reserves its cost
 * (settings otp.channelCosts) against a per-tenant, per-UTC-day counter in Redis before it is planned or sent;
 * a code that would take the day's spend past limits.fallbackBudgetPerDay is refused on that channel.
 *
 * One Redis hash per tenant and day (kept 2 days), amounts in integer milli-units so that sums are exact:
 * `total` (reserved so far), `refused` (codes refused), `notified` (the budget event went out), and one field per
 * reservation (`d:<delivery id>`), so a reservation is idempotent: a retried send job or a planner that reserved
 * before the send worker does is charged once. The check-and-add is one Lua script (atomic across processes).
 * A reservation whose transaction then rolls back stays counted: the cap errs on the side of spending less.
 */
const RESERVE = `
local key = KEYS[1]
if redis.call('HEXISTS', key, ARGV[1]) == 1 then
  return {1, tonumber(redis.call('HGET', key, 'total') or '0'), 0}
end
local total = tonumber(redis.call('HGET', key, 'total') or '0')
local cost = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
if total + cost > budget then
  redis.call('HINCRBY', key, 'refused', 1)
  local first = redis.call('HSETNX', key, 'notified', 1)
  redis.call('EXPIRE', key, tonumber(ARGV[4]))
  return {0, total, first}
end
redis.call('HSET', key, ARGV[1], cost)
total = redis.call('HINCRBY', key, 'total', cost)
redis.call('EXPIRE', key, tonumber(ARGV[4]))
return {1, total, 0}
`;

const KEEP_SECONDS = 2 * 24 * 3600;
const milli = (units: number) => Math.round(units * 1000);

export interface Reservation {
  ok: boolean;
  /** spent today including this code when ok, in units */
  spent: number;
  budget: number;
  cost: number;
}

export interface FallbackBudgetDeps {
  redis: Redis;
  prefix: string;
  prisma: PrismaClient;
  clock: Clock;
  logger: Logger;
  /** after commit: hands event rows to the events queue (EventPublisher.dispatch) */
  eventDispatch: (ids: string[]) => Promise<void>;
}

export class FallbackBudget {
  constructor(private readonly deps: FallbackBudgetDeps) {}

  static day(now: Date): string {
    return now.toISOString().slice(0, 10);
  }

  private key(tenantId: string, day: string): string {
    return `${this.deps.prefix}:fallback-spend:${tenantId}:${day}`;
  }

  /**
   * Reserves one code's cost; `ref` (the delivery id) makes it idempotent. Refused: the first refusal of the day
   * publishes `limit.fallback_budget_reached` (and an audit row and a warn log); every refusal is logged.
   */
  async reserve(input: { tenantId: string; settings: TenantSettings; channel: PaidChannel; ref: string; verificationId?: string }): Promise<Reservation> {
    const now = this.deps.clock.now();
    const day = FallbackBudget.day(now);
    const cost = input.settings.otp.channelCosts[input.channel];
    const budget = input.settings.limits.fallbackBudgetPerDay;
    const res = (await this.deps.redis.eval(RESERVE, 1, this.key(input.tenantId, day), `d:${input.ref}`, String(milli(cost)), String(milli(budget)), String(KEEP_SECONDS))) as [number, number, number];
    const [ok, totalMilli, first] = res.map(Number) as [number, number, number];
    const out: Reservation = { ok: ok === 1, spent: totalMilli / 1000, budget, cost };
    if (out.ok) return out;
    const info = { tenantId: input.tenantId, channel: input.channel, cost, budget, spent: out.spent, verificationId: input.verificationId, day };
    this.deps.logger.warn(info, "daily fallback budget reached: paid code refused");
    if (first === 1) {
      try {
        await this.notify(input.tenantId, day, out, input.channel, input.verificationId, now);
      } catch (err) {
        // let the next refusal try again
        await this.deps.redis.hdel(this.key(input.tenantId, day), "notified").catch(() => undefined);
        this.deps.logger.error({ ...info, err: err instanceof Error ? err.message : String(err) }, "fallback budget event not recorded");
      }
    }
    return out;
  }

  private async notify(tenantId: string, day: string, r: Reservation, channel: PaidChannel, verificationId: string | undefined, now: Date): Promise<void> {
    const data = { day, budget: r.budget, spent: r.spent, channel, cost: r.cost, ...(verificationId ? { verificationId } : {}) };
    const id = await transaction(this.deps.prisma, async (tx) => {
      await recordAudit(tx, { tenantId, type: "limit.fallback_budget_reached", actor: "system", verificationId: verificationId ?? null, data, at: now });
      return EventPublisher.publish(tx, { tenantId, type: "limit.fallback_budget_reached", data, now });
    });
    if (id) await this.deps.eventDispatch([id]);
  }

  /** Today's (UTC) figures for the tenant. */
  async usage(tenantId: string, settings: TenantSettings): Promise<{ day: string; budget: number; spent: number; remaining: number; refused: number; budgetReached: boolean; resetsAt: string; costs: TenantSettings["otp"]["channelCosts"] }> {
    const now = this.deps.clock.now();
    const day = FallbackBudget.day(now);
    const [total, refused, notified] = await this.deps.redis.hmget(this.key(tenantId, day), "total", "refused", "notified");
    const spent = Number(total ?? 0) / 1000;
    const budget = settings.limits.fallbackBudgetPerDay;
    const next = new Date(`${day}T00:00:00.000Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    return {
      day, budget, spent, remaining: Math.max(0, Math.round((budget - spent) * 1000) / 1000), refused: Number(refused ?? 0),
      budgetReached: notified !== null, resetsAt: next.toISOString(), costs: settings.otp.channelCosts,
    };
  }
}
