import type { Redis } from "ioredis";
import { recordAudit } from "../audit/audit";
import { transaction, type PrismaClient } from "../db/prisma";
import { EventPublisher } from "../events/publisher";
import type { Logger } from "../observability/logger";
import type { CloudApiClient } from "../providers/whatsapp/cloud-api.client";
import type { Clock } from "../shared/clock";
import { TtlCache } from "../shared/ttl-cache";
import type { AccountUpdateHandler } from "../tenants/account-updates";
import { readSettings } from "../tenants/settings";
import { limitOfTier, tierFromQualityUpdate } from "./tiers";

/**
 * Meta's messaging limit per tenant (docs/limits.md): the tier (read from the Graph API, pushed by the
 * `phone_number_quality_update` webhook), the unique users reached outside the customer-service window in the
 * moving last 24 hours (counted from the `messages` table), and the `messaging_limit.warning` event when that use
 * crosses the tenant's `limits.messagingLimitWarnPercent`.
 */
export interface MessagingLimitStatus {
  tier: string | null;
  /** unique users per 24 h the tier allows; null: TIER_UNLIMITED, or no known tier */
  limit: number | null;
  checkedAt: string | null;
  uniqueUsers24h: number;
  /** uniqueUsers24h / limit × 100 (one decimal); null without a finite limit */
  usedPercent: number | null;
  /** usedPercent ≥ warnPercent */
  warning: boolean;
  warnPercent: number;
}

export type RefreshResult =
  | { ok: true; tier: string; changed: boolean; checkedAt: Date }
  | { ok: false; httpStatus?: number; code?: number; title?: string };

export interface MessagingLimitsDeps {
  prisma: PrismaClient;
  redis: Redis;
  prefix: string;
  clock: Clock;
  logger: Logger;
  client: Pick<CloudApiClient, "getMessagingLimit">;
  /** the tenant's decrypted Cloud API token (TenantDirectory.accessToken) */
  accessToken: (tenantId: string) => Promise<string>;
  /** hands event rows to the events queue after commit (EventPublisher.dispatch) */
  dispatch: (ids: Array<string | null>) => Promise<void>;
  /** how often the tier is read again from Meta (default 6 h) */
  refreshEveryMs?: number;
  /** how often one tenant's use is checked by the sweep (default 1 min) */
  checkEveryMs?: number;
}

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;
/** a failed tier read is not tried again by the sweep for this long */
const RETRY_FAILED_REFRESH_MS = 10 * 60_000;
/** metric values older than this are not exported (no worker has checked the tenant lately) */
const SNAPSHOT_MAX_AGE_MS = HOUR_MS;

/**
 * Unique users reached outside the customer-service window, per tenant, since $1: business-initiated template
 * messages Meta accepted (sent_at set; a `failed` one never delivered reached nobody) to a contact with no inbound
 * message in the 24 hours before the send. `contacts.last_inbound_at` (the latest inbound timestamp) settles most
 * rows without looking at the contact's messages. The partial index messages_outbound_templates_sent_idx
 * (tenant_id, sent_at) WHERE outbound template bounds the scan to the window's templates.
 */
const USAGE_SELECT = `SELECT m.tenant_id::text AS tenant, count(DISTINCT m.contact_id)::int AS n
  FROM messages m
  JOIN contacts c ON c.id = m.contact_id
 WHERE m.direction = 'outbound'
   AND m.status IN ('sent', 'delivered', 'read', 'failed')
   AND m.sent_at > $1::timestamptz
   AND m.type = 'template'
   AND NOT (m.status = 'failed' AND m.delivered_at IS NULL)
   AND (c.last_inbound_at IS NULL
        OR c.last_inbound_at <= m.sent_at - interval '24 hours'
        OR NOT EXISTS (SELECT 1 FROM messages i
                        WHERE i.contact_id = m.contact_id AND i.direction = 'inbound'
                          AND i.timestamp > m.sent_at - interval '24 hours' AND i.timestamp <= m.sent_at))`;
const USAGE_ONE = `${USAGE_SELECT}
   AND m.tenant_id = $2::uuid
 GROUP BY 1`;
const USAGE_MANY = `${USAGE_SELECT}
   AND m.tenant_id = ANY($2::uuid[])
 GROUP BY 1`;

function digits(v: unknown): string {
  return typeof v === "string" || typeof v === "number" ? String(v).replace(/\D/g, "") : "";
}

export class MessagingLimits {
  /** tenants this process checked within checkEveryMs */
  private readonly checked: TtlCache<string, true>;
  /** tenants whose tier could not be read within RETRY_FAILED_REFRESH_MS */
  private readonly refreshFailed: TtlCache<string, true>;
  private running: Promise<number> | null = null;

  constructor(private readonly deps: MessagingLimitsDeps) {
    this.checked = new TtlCache({ ttlMs: deps.checkEveryMs ?? 60_000, max: 100_000, clock: deps.clock });
    this.refreshFailed = new TtlCache({ ttlMs: RETRY_FAILED_REFRESH_MS, max: 100_000, clock: deps.clock });
  }

  private key(...parts: string[]): string {
    return [this.deps.prefix, "mlimit", ...parts].join(":");
  }

  /**
   * Reads the tier from Meta and stores it (`messagingLimitTier`, `messagingLimitCheckedAt`). A change is audited
   * (`messaging_limit.tier_changed`). Failures are values (and logged), never thrown for Meta's answers.
   */
  async refresh(tenantId: string, actor = "system"): Promise<RefreshResult> {
    const { prisma, clock, logger } = this.deps;
    const row = await prisma.tenant.findUnique({ where: { id: tenantId }, select: { phoneNumberId: true, messagingLimitTier: true } });
    if (!row) return { ok: false, title: "no such tenant" };
    const res = await this.deps.client.getMessagingLimit(row.phoneNumberId, await this.deps.accessToken(tenantId));
    if (!res.ok) {
      this.refreshFailed.set(tenantId, true);
      logger.warn({ tenantId, httpStatus: res.httpStatus, code: res.code, title: res.title, networkError: res.networkError }, "messaging-limit tier not read from the Cloud API");
      return { ok: false, httpStatus: res.httpStatus, code: res.code, title: res.title };
    }
    this.refreshFailed.delete(tenantId);
    const checkedAt = clock.now();
    const changed = row.messagingLimitTier !== res.tier;
    await transaction(prisma, async (tx) => {
      await tx.tenant.update({ where: { id: tenantId }, data: { messagingLimitTier: res.tier, messagingLimitCheckedAt: checkedAt } });
      if (changed) {
        await recordAudit(tx, { tenantId, type: "messaging_limit.tier_changed", actor, data: { from: row.messagingLimitTier, to: res.tier, source: "graph_api" }, at: checkedAt });
      }
    });
    if (changed) logger.info({ tenantId, from: row.messagingLimitTier, to: res.tier }, "messaging-limit tier read from the Cloud API");
    return { ok: true, tier: res.tier, changed, checkedAt };
  }

  /** Unique users reached outside the customer-service window in the 24 hours before `now`. */
  async usage(tenantId: string, now = this.deps.clock.now()): Promise<number> {
    const rows = await this.deps.prisma.$queryRawUnsafe<{ tenant: string; n: number }[]>(USAGE_ONE, new Date(now.getTime() - DAY_MS), tenantId);
    return Number(rows[0]?.n ?? 0);
  }

  /** `usage` for several tenants in one statement (the sweep). */
  async usageMany(tenantIds: string[], now = this.deps.clock.now()): Promise<Map<string, number>> {
    const out = new Map<string, number>(tenantIds.map((id) => [id, 0]));
    if (tenantIds.length === 0) return out;
    const rows = await this.deps.prisma.$queryRawUnsafe<{ tenant: string; n: number }[]>(USAGE_MANY, new Date(now.getTime() - DAY_MS), tenantIds);
    for (const r of rows) out.set(r.tenant, Number(r.n));
    return out;
  }

  /** What `GET /admin/tenants/:id/messaging-limit` answers. A tenant whose tier was never read is read now. */
  async status(tenantId: string): Promise<MessagingLimitStatus | null> {
    const read = () =>
      this.deps.prisma.tenant.findUnique({ where: { id: tenantId }, select: { messagingLimitTier: true, messagingLimitCheckedAt: true, settings: true } });
    let row = await read();
    if (!row) return null;
    if (!row.messagingLimitTier && !this.recentlyFailed(tenantId)) {
      await this.refresh(tenantId).catch((err: Error) => this.deps.logger.warn({ tenantId, err: err.message }, "messaging-limit tier not read"));
      row = (await read()) ?? row;
    }
    const used = await this.usage(tenantId);
    const status = describe(row.messagingLimitTier, row.messagingLimitCheckedAt, used, readSettings(row.settings).limits.messagingLimitWarnPercent);
    await this.remember(tenantId, status);
    return status;
  }

  /**
   * The worker sweep's part (src/main/workers.ts, every 15 s): each tenant at most once a minute (across processes:
   * a Redis SET NX per tenant), the tier read again when older than 6 hours, the use counted (one statement for all
   * due tenants), the warning raised when due. Returns how many tenants were checked. `force` (tests, operators)
   * checks every tenant now, after a sweep in progress.
   */
  async sweep(opts: { force?: boolean } = {}): Promise<number> {
    if (this.running) {
      if (!opts.force) return 0;
      await this.running.catch(() => 0);
    }
    const run = this.sweepOnce(opts);
    this.running = run;
    try {
      return await run;
    } finally {
      if (this.running === run) this.running = null;
    }
  }

  private async sweepOnce(opts: { force?: boolean }): Promise<number> {
    const checkEvery = this.deps.checkEveryMs ?? 60_000;
    const tenants = await this.deps.prisma.tenant.findMany({ select: { id: true, messagingLimitTier: true, messagingLimitCheckedAt: true, settings: true } });
    const due: typeof tenants = [];
    for (const t of tenants) {
      if (!opts.force && this.checked.has(t.id)) continue;
      this.checked.set(t.id, true);
      const mine = opts.force || (await this.deps.redis.set(this.key("check", t.id), "1", "PX", checkEvery, "NX")) === "OK";
      if (mine) due.push(t);
    }
    if (due.length === 0) return 0;
    const refreshEvery = this.deps.refreshEveryMs ?? 6 * HOUR_MS;
    for (const t of due) {
      const age = t.messagingLimitCheckedAt ? this.deps.clock.now().getTime() - t.messagingLimitCheckedAt.getTime() : Infinity;
      if (age < refreshEvery || this.recentlyFailed(t.id)) continue;
      const r = await this.refresh(t.id).catch((err: Error) => {
        this.refreshFailed.set(t.id, true);
        this.deps.logger.warn({ tenantId: t.id, err: err.message }, "messaging-limit tier not read");
        return null;
      });
      if (r?.ok) {
        t.messagingLimitTier = r.tier;
        t.messagingLimitCheckedAt = r.checkedAt;
      }
    }
    const now = this.deps.clock.now();
    const used = await this.usageMany(due.map((t) => t.id), now);
    for (const t of due) {
      try {
        const status = describe(t.messagingLimitTier, t.messagingLimitCheckedAt, used.get(t.id) ?? 0, readSettings(t.settings).limits.messagingLimitWarnPercent);
        await this.remember(t.id, status);
        if (status.warning) await this.warn(t.id, status, now);
      } catch (err) {
        // one tenant's failure (unreadable settings, the database) does not stop the others' checks
        this.deps.logger.warn({ tenantId: t.id, err: err instanceof Error ? err.message : String(err) }, "messaging-limit check failed");
      }
    }
    return due.length;
  }

  /** `messaging_limit.warning`: at most once per tenant per 24 h (Redis SET NX EX), with an audit row and a log line. */
  private async warn(tenantId: string, s: MessagingLimitStatus, now: Date): Promise<void> {
    const flag = this.key("warned", tenantId);
    if ((await this.deps.redis.set(flag, now.toISOString(), "EX", DAY_MS / 1000, "NX")) !== "OK") return;
    const data = {
      tier: s.tier!,
      limit: s.limit!,
      uniqueUsers24h: s.uniqueUsers24h,
      usedPercent: s.usedPercent!,
      warnPercent: s.warnPercent,
      ...(s.checkedAt ? { checkedAt: s.checkedAt } : {}),
    };
    try {
      const id = await transaction(this.deps.prisma, async (tx) => {
        await recordAudit(tx, { tenantId, type: "messaging_limit.warning", actor: "system", data, at: now });
        return EventPublisher.publish(tx, { tenantId, type: "messaging_limit.warning", data, now });
      });
      this.deps.logger.warn({ tenantId, ...data }, "messaging limit: unique users outside the service window near Meta's tier");
      await this.deps.dispatch([id]).catch((err: Error) => this.deps.logger.warn({ err: err.message }, "limit event not dispatched (the events sweep will)"));
    } catch (err) {
      await this.deps.redis.del(flag).catch(() => undefined);
      throw err;
    }
  }

  /**
   * `phone_number_quality_update` (registered in src/main/core.ts): the tier Meta announces for a number of the
   * tenant's WABA, matched by the display number (an update naming no number applies to every number of the
   * account: the limit is the portfolio's). Idempotent: only a different tier is written, never over a fresher
   * reading (an older webhook processed late); a quality flag without a tier is logged only.
   */
  onQualityUpdate: AccountUpdateHandler = async (tenant, value, item) => {
    const { prisma, logger } = this.deps;
    const display = digits(value.display_phone_number);
    if (display && display !== digits(tenant.displayPhoneNumber)) return "other_number";
    const event = typeof value.event === "string" ? value.event.slice(0, 40) : undefined;
    const tier = tierFromQualityUpdate(value);
    if (!tier) {
      logger.info({ tenantId: tenant.id, event }, "phone number quality update without a messaging-limit tier");
      return "no_tier";
    }
    const at = new Date(item.receivedAt);
    return transaction(prisma, async (tx) => {
      const row = await tx.tenant.findUnique({ where: { id: tenant.id }, select: { messagingLimitTier: true, messagingLimitCheckedAt: true } });
      if (!row) return "unknown_tenant";
      if (row.messagingLimitTier === tier) return "unchanged";
      if (row.messagingLimitCheckedAt && row.messagingLimitCheckedAt > at) return "stale";
      // compare-and-set: a concurrent writer (a retry, a refresh) makes this a no-op
      const res = await tx.tenant.updateMany({
        where: { id: tenant.id, messagingLimitTier: row.messagingLimitTier, messagingLimitCheckedAt: row.messagingLimitCheckedAt },
        data: { messagingLimitTier: tier, messagingLimitCheckedAt: at },
      });
      if (res.count === 0) return "unchanged";
      await recordAudit(tx, {
        tenantId: tenant.id,
        type: "messaging_limit.tier_changed",
        actor: "meta",
        data: { from: row.messagingLimitTier, to: tier, source: "webhook", ...(event ? { event } : {}) },
        at,
      });
      logger.info({ tenantId: tenant.id, from: row.messagingLimitTier, to: tier, event }, "messaging-limit tier changed by Meta");
      return "tier_changed";
    });
  };

  /** Last values per tenant for the Prometheus gauges (any process exports them, like the DB-derived ones). */
  async metricsSnapshot(): Promise<Array<{ tenant: string; limit: number | null; used: number }>> {
    const all = await this.deps.redis.hgetall(this.key("snapshot"));
    const out: Array<{ tenant: string; limit: number | null; used: number }> = [];
    for (const [tenant, raw] of Object.entries(all)) {
      try {
        const v = JSON.parse(raw) as { limit: number | null; unlimited: boolean; used: number; at: number };
        if (Date.now() - v.at > SNAPSHOT_MAX_AGE_MS) continue;
        out.push({ tenant, limit: v.unlimited ? Infinity : v.limit, used: v.used });
      } catch {
        // a value written by another version: skipped
      }
    }
    return out;
  }

  private async remember(tenantId: string, s: MessagingLimitStatus): Promise<void> {
    const v = { limit: s.limit, unlimited: s.tier === "TIER_UNLIMITED", used: s.uniqueUsers24h, at: Date.now() };
    await this.deps.redis.hset(this.key("snapshot"), tenantId, JSON.stringify(v)).catch(() => undefined);
  }

  private recentlyFailed(tenantId: string): boolean {
    return this.refreshFailed.has(tenantId);
  }
}

/** The status of a tier and a use: the limit, the share used, and whether it crossed the warning threshold. */
export function describe(tier: string | null, checkedAt: Date | null, used: number, warnPercent: number): MessagingLimitStatus {
  const limit = limitOfTier(tier);
  const finite = typeof limit === "number" && limit > 0 ? limit : null;
  const usedPercent = finite ? Math.round((used / finite) * 1000) / 10 : null;
  return {
    tier,
    limit: finite,
    checkedAt: checkedAt?.toISOString() ?? null,
    uniqueUsers24h: used,
    usedPercent,
    warning: finite !== null && used * 100 >= warnPercent * finite,
    warnPercent,
  };
}
