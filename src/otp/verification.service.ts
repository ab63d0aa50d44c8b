import { randomUUID } from "node:crypto";
import { Prisma, transaction, type PrismaClient, type Tx } from "../db/prisma";
import { maskPhone, type Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { readSettings, type Channel, type TenantSettings } from "../tenants/settings";
import { codeMatches, generateCode, hashCode } from "./codes";
import { OtpError } from "./errors";
import type { Limits } from "./limits";
import { localeFor } from "./locale";
import { checkNumberPolicy, normalizeNumber } from "./phone";
import { emptyPostCommit, type DeliveryPlanner, type PostCommit } from "./delivery";
import type { OtpEvents } from "./otp-events";

export type VerificationRow = Prisma.VerificationGetPayload<{ include: { deliveries: true } }>;

export interface Actor {
  tenantId: string;
  /** who asked: "api-key:<id>", "admin-key", "chat:<contact id>", "system" */
  actor: string;
}

export interface CreateInput {
  to: string;
  channel?: Channel;
  purpose?: string;
  locale?: string;
  clientIp?: string;
}

export interface CheckInput {
  id?: string;
  to?: string;
  purpose?: string;
  code: string;
  clientIp?: string;
}

export interface CheckResult {
  verification: VerificationRow;
  valid: boolean;
}

export const DEFAULT_PURPOSE = "login";

/** Run inside a caller's transaction (the chat handler's): work after commit is left in `post` for the caller. */
export interface InTx {
  tx: Tx;
  post: PostCommit;
}
/** A live code with less than this much life left is replaced instead of re-sent. */
const REPLACE_WHEN_LEFT_MS = 60_000;

export interface VerificationServiceDeps {
  prisma: PrismaClient;
  keyring: Keyring;
  limits: Limits;
  clock: Clock;
  logger: Logger;
  delivery: DeliveryPlanner;
  events: OtpEvents;
}

/**
 * The OTP engine: create (send or re-send), check, cancel, report, expire. Every state change is one
 * conditional write in PostgreSQL, so concurrent requests from several processes cannot both win; events, audit
 * rows and deliveries are written in the same transaction and dispatched after commit.
 *
 * Re-send policy (docs/verify-api.md): a request for a number with a live code re-sends the SAME code (same id,
 * same attempts counter, same expiry), like Twilio Verify, so a late first message never carries a dead code;
 * when less than a minute of life is left the old code is canceled and a new one made.
 */
export class VerificationService {
  constructor(private readonly deps: VerificationServiceDeps) {}

  /** Runs `fn` in the caller's transaction, or in a new one followed by the post-commit dispatch. */
  private async run<T>(ext: InTx | undefined, fn: (tx: Tx, post: PostCommit) => Promise<T>): Promise<T> {
    if (ext) return fn(ext.tx, ext.post);
    const post = emptyPostCommit();
    const result = await transaction(this.deps.prisma, (tx) => fn(tx, post));
    await this.deps.delivery.afterCommit(post);
    return result;
  }

  private settingsOf = async (tx: Tx | PrismaClient, tenantId: string): Promise<{ name: string; settings: TenantSettings }> => {
    const row = await tx.tenant.findUniqueOrThrow({ where: { id: tenantId }, select: { name: true, settings: true } });
    return { name: row.name, settings: readSettings(row.settings) };
  };

  async create(who: Actor, input: CreateInput, ext?: InTx): Promise<VerificationRow> {
    const { prisma, limits, clock } = this.deps;
    const now = clock.now();
    const { settings } = await this.settingsOf(prisma, who.tenantId);
    const number = normalizeNumber(input.to);
    const test = settings.otp.testNumbers.find((t) => t.number === number.e164);
    if (!test) checkNumberPolicy(number, settings.phonePolicy);
    const channel = input.channel ?? settings.otp.channels[0]!;
    if (!this.deps.delivery.available(channel)) throw new OtpError("channel_unavailable");
    const purpose = input.purpose ?? DEFAULT_PURPOSE;

    const block = await prisma.numberBlock.findUnique({ where: { tenantId_phone: { tenantId: who.tenantId, phone: number.e164 } } });
    if (block && block.until > now) throw new OtpError("number_blocked", Math.ceil((block.until.getTime() - now.getTime()) / 1000));

    if (!test) {
      // a request inside the re-send cool-down is refused before it spends any other limit
      const live = await prisma.verification.findFirst({ where: { tenantId: who.tenantId, to: number.e164, purpose, status: "pending" }, select: { nextSendAt: true, expiresAt: true } });
      if (live?.nextSendAt && live.nextSendAt > now && live.expiresAt.getTime() - now.getTime() > REPLACE_WHEN_LEFT_MS) {
        throw new OtpError("resend_cooldown", Math.max(1, Math.ceil((live.nextSendAt.getTime() - now.getTime()) / 1000)));
      }
      const l = settings.limits;
      await limits.consume("tenant", who.tenantId, l.tenantPerMinute, 60);
      if (input.clientIp) await limits.consume("ip", `${who.tenantId}:${input.clientIp}`, l.ipPerHour, 3600);
      await limits.consume("prefix", `${who.tenantId}:${number.prefix}`, l.prefixPer10Minutes, 600);
    }

    const attempt = () =>
      this.run(ext, async (tx, post) => {
        const live = await lockPending(tx, who.tenantId, number.e164, purpose);
        if (live && live.expiresAt.getTime() - now.getTime() > REPLACE_WHEN_LEFT_MS) {
          return this.resend(tx, who, live, channel, settings, now, post, !!test);
        }
        if (live) await this.end(tx, who, live.id, live.expiresAt <= now ? "expired" : "canceled", now, post, "replaced by a new code");
        if (!test) {
          await limits.consume("number_sends", `${who.tenantId}:${number.e164}`, settings.otp.maxSendsPerNumber, settings.otp.sendWindowMinutes * 60, "send_limit_reached");
        }
        const id = randomUUID();
        const code = test?.code ?? generateCode(settings.otp.codeLength);
        await tx.verification.create({
          data: {
            id,
            tenantId: who.tenantId,
            to: number.e164,
            purpose,
            channel,
            codeLength: code.length,
            codeHash: hashCode(this.deps.keyring, id, code),
            codeEnc: this.deps.keyring.encrypt("otp-code", code),
            locale: localeFor(input.locale, number.country, settings.otp.defaultLocale),
            maxAttempts: settings.otp.maxAttempts,
            sendCount: 1,
            lastSentAt: now,
            nextSendAt: new Date(now.getTime() + cooldown(settings, 1) * 1000),
            expiresAt: new Date(now.getTime() + settings.otp.expiryMinutes * 60_000),
            clientIp: input.clientIp,
          },
        });
        await this.deps.events.record(tx, post, { tenantId: who.tenantId, type: "requested", actor: who.actor, verificationId: id, to: number.e164, purpose, channel, now });
        await this.deps.delivery.plan(tx, post, { verificationId: id, channel, reason: "requested", now });
        return loadRow(tx, id);
      });
    try {
      return await attempt();
    } catch (err) {
      // two creates for one number raced past the lock; the loser retries and sees the winner's live code
      if (isUniqueViolation(err) && !ext) return attempt();
      throw err;
    }
  }

  private async resend(tx: Tx, who: Actor, live: { id: string }, channel: Channel, settings: TenantSettings, now: Date, post: PostCommit, isTest: boolean): Promise<VerificationRow> {
    const v = await tx.verification.findUniqueOrThrow({ where: { id: live.id } });
    if (!isTest && v.nextSendAt && v.nextSendAt > now) {
      throw new OtpError("resend_cooldown", Math.max(1, Math.ceil((v.nextSendAt.getTime() - now.getTime()) / 1000)));
    }
    if (!isTest) {
      await this.deps.limits.consume("number_sends", `${who.tenantId}:${v.to}`, settings.otp.maxSendsPerNumber, settings.otp.sendWindowMinutes * 60, "send_limit_reached");
    }
    const sendCount = v.sendCount + 1;
    await tx.verification.update({
      where: { id: v.id },
      data: { sendCount, lastSentAt: now, nextSendAt: new Date(now.getTime() + cooldown(settings, sendCount) * 1000), channel },
    });
    await this.deps.delivery.plan(tx, post, { verificationId: v.id, channel, reason: "resend", now });
    return loadRow(tx, v.id);
  }

  /**
   * Checks a code. Wrong attempts are counted atomically; the code approves once. The comparison is done in
   * constant time here, and its result written with one conditional UPDATE that only a still-pending,
   * unexpired verification with attempts left can match: of thirty concurrent right answers exactly one wins.
   */
  async check(who: Actor, input: CheckInput, ext?: InTx): Promise<CheckResult> {
    const { prisma, limits, clock, keyring } = this.deps;
    const now = clock.now();
    const { settings } = await this.settingsOf(prisma, who.tenantId);
    await limits.consume("checks_tenant", who.tenantId, settings.limits.checksPerTenantPerMinute, 60);
    if (input.clientIp) await limits.consume("ip", `${who.tenantId}:check:${input.clientIp}`, settings.limits.ipPerHour * 10, 3600);

    let v;
    if (input.id) {
      v = isUuid(input.id) ? await prisma.verification.findFirst({ where: { id: input.id, tenantId: who.tenantId, status: "pending" } }) : null;
      if (v && input.purpose && v.purpose !== input.purpose) v = null;
    } else {
      const number = normalizeNumber(input.to ?? "");
      v = await prisma.verification.findFirst({ where: { tenantId: who.tenantId, to: number.e164, purpose: input.purpose ?? DEFAULT_PURPOSE, status: "pending" } });
    }
    const numberKey = `${who.tenantId}:${v?.to ?? input.to ?? input.id}`;
    await limits.consume("checks_number", numberKey, settings.limits.checksPerNumberPer10Minutes, 600);
    if (!v) throw new OtpError("verification_not_found");
    if (v.expiresAt <= now) {
      await this.expire(v.id, who.actor);
      throw new OtpError("verification_not_found", undefined, "The code has expired: request a new one");
    }

    const valid = codeMatches(keyring, v.id, input.code, v.codeHash);
    const row = await this.run(ext, async (tx, post) => {
      const updated = await tx.$queryRaw<{ status: string; attempts: number }[]>`
        UPDATE verifications
           SET attempts = attempts + 1,
               status = (CASE WHEN ${valid}::boolean THEN 'approved'
                              WHEN attempts + 1 >= max_attempts THEN 'max_attempts_reached'
                              ELSE 'pending' END)::"VerificationStatus",
               ended_at = CASE WHEN ${valid}::boolean OR attempts + 1 >= max_attempts THEN ${now}::timestamptz ELSE NULL END,
               code_enc = CASE WHEN ${valid}::boolean OR attempts + 1 >= max_attempts THEN NULL ELSE code_enc END,
               updated_at = ${now}::timestamptz
         WHERE id = ${v.id}::uuid AND status = 'pending' AND expires_at > ${now}::timestamptz AND attempts < max_attempts
     RETURNING status::text AS status, attempts`;
      const result = updated[0];
      if (!result) return null; // another request ended it first
      const base = { tenantId: who.tenantId, actor: who.actor, verificationId: v.id, to: v.to, purpose: v.purpose, channel: v.channel, now };
      await this.deps.events.record(tx, post, { ...base, type: valid ? "checked_right" : "checked_wrong", attempts: result.attempts });
      if (result.status === "approved") await this.deps.events.record(tx, post, { ...base, type: "approved", attempts: result.attempts });
      if (result.status === "max_attempts_reached") await this.deps.events.record(tx, post, { ...base, type: "locked", attempts: result.attempts });
      return loadRow(tx, v.id);
    });
    if (!row) throw new OtpError("verification_not_found");
    return { verification: row, valid: row.status === "approved" && valid };
  }

  async get(who: Actor, id: string): Promise<VerificationRow> {
    if (!isUuid(id)) throw new OtpError("verification_not_found");
    let v = await this.deps.prisma.verification.findFirst({ where: { id, tenantId: who.tenantId }, include: { deliveries: { orderBy: { createdAt: "asc" } } } });
    if (!v) throw new OtpError("verification_not_found");
    if (v.status === "pending" && v.expiresAt <= this.deps.clock.now()) {
      await this.expire(v.id, "system");
      v = await loadRow(this.deps.prisma, v.id);
    }
    return v;
  }

  async cancel(who: Actor, id: string): Promise<VerificationRow> {
    const v = await this.get(who, id);
    if (v.status === "canceled") return v; // canceling twice is idempotent
    if (v.status !== "pending") throw new OtpError("verification_not_pending");
    return this.run(undefined, async (tx, post) => {
      await this.end(tx, who, v.id, "canceled", this.deps.clock.now(), post);
      return loadRow(tx, v.id);
    });
  }

  /**
   * "I didn't request this": cancels every pending code for the number, blocks new ones for the tenant's
   * period, tells the business. Returns how many verifications were canceled.
   */
  async report(who: Actor, phoneE164: string, source: string, ext?: InTx): Promise<{ canceled: number; blockedUntil: Date }> {
    const { prisma, clock } = this.deps;
    const now = clock.now();
    const { settings } = await this.settingsOf(prisma, who.tenantId);
    const until = new Date(now.getTime() + settings.otp.blockMinutesAfterReport * 60_000);
    const canceled = await this.run(ext, async (tx, post) => {
      const pending = await tx.verification.findMany({ where: { tenantId: who.tenantId, to: phoneE164, status: "pending" }, select: { id: true, purpose: true, channel: true } });
      for (const p of pending) {
        await this.end(tx, who, p.id, "canceled", now, post, "reported by the customer");
        await this.deps.events.record(tx, post, { tenantId: who.tenantId, type: "reported", actor: who.actor, verificationId: p.id, to: phoneE164, purpose: p.purpose, channel: p.channel, now, reason: source });
      }
      if (pending.length === 0) {
        await this.deps.events.record(tx, post, { tenantId: who.tenantId, type: "reported", actor: who.actor, to: phoneE164, now, reason: source });
      }
      await tx.numberBlock.upsert({
        where: { tenantId_phone: { tenantId: who.tenantId, phone: phoneE164 } },
        create: { tenantId: who.tenantId, phone: phoneE164, until, reason: "reported" },
        update: { until, reason: "reported" },
      });
      await this.deps.events.record(tx, post, { tenantId: who.tenantId, type: "number_blocked", actor: who.actor, to: phoneE164, now, reason: source, until });
      return pending.length;
    });
    this.deps.logger.info({ to: maskPhone(phoneE164), canceled, source }, "customer reported an unrequested code");
    return { canceled, blockedUntil: until };
  }

  /** Marks one verification expired if it still is pending and past its expiry. */
  async expire(id: string, actor: string): Promise<boolean> {
    const now = this.deps.clock.now();
    return this.run(undefined, async (tx, post) => {
      const v = await tx.verification.findUnique({ where: { id } });
      if (!v || v.status !== "pending" || v.expiresAt > now) return false;
      return this.end(tx, { tenantId: v.tenantId, actor }, id, "expired", now, post);
    });
  }

  /** The periodic sweep: every pending verification past its expiry becomes `expired` (and the business is told). */
  async expireDue(limit = 500): Promise<number> {
    const due = await this.deps.prisma.verification.findMany({
      where: { status: "pending", expiresAt: { lte: this.deps.clock.now() } },
      select: { id: true },
      take: limit,
    });
    let n = 0;
    for (const { id } of due) if (await this.expire(id, "system")) n++;
    return n;
  }

  /** Ends a pending verification (conditional: a no-op when it already ended) and erases its code copy. */
  private async end(tx: Tx, who: Actor, id: string, status: "expired" | "canceled", now: Date, post: PostCommit, reason?: string): Promise<boolean> {
    const res = await tx.verification.updateMany({ where: { id, status: "pending" }, data: { status, endedAt: now, codeEnc: null } });
    if (res.count === 0) return false;
    const v = await tx.verification.findUniqueOrThrow({ where: { id }, select: { to: true, purpose: true, channel: true, attempts: true } });
    await this.deps.events.record(tx, post, { tenantId: who.tenantId, type: status, actor: who.actor, verificationId: id, to: v.to, purpose: v.purpose, channel: v.channel, now, reason, attempts: v.attempts });
    return true;
  }
}

function cooldown(settings: TenantSettings, sendCount: number): number {
  const c = settings.otp.resendCooldownsSeconds;
  return c[Math.min(sendCount - 1, c.length - 1)]!;
}

async function lockPending(tx: Tx, tenantId: string, to: string, purpose: string): Promise<{ id: string; expiresAt: Date } | null> {
  const rows = await tx.$queryRaw<{ id: string; expires_at: Date }[]>`
    SELECT id::text AS id, expires_at FROM verifications
     WHERE tenant_id = ${tenantId}::uuid AND "to" = ${to} AND purpose = ${purpose} AND status = 'pending'
     FOR UPDATE`;
  const r = rows[0];
  return r ? { id: r.id, expiresAt: r.expires_at } : null;
}

function loadRow(tx: Tx | PrismaClient, id: string): Promise<VerificationRow> {
  return tx.verification.findUniqueOrThrow({ where: { id }, include: { deliveries: { orderBy: { createdAt: "asc" } } } });
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; meta?: unknown; message?: string };
  return e?.code === "P2002" || /23505|unique constraint/i.test(String(e?.message ?? ""));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(v: string): boolean {
  return UUID.test(v);
}
