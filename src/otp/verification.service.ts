import { randomUUID } from "node:crypto";
import { Prisma, transaction, type PrismaClient, type Tx } from "../db/prisma";
import { maskPhone, type Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { batch, sqlFor, type BatchStatement, type Queryable } from "../db/sql";
import { readSettings, readSettingsText, testNumberOf, type Channel, type TenantSettings } from "../tenants/settings";
import { codeMatches, generateCode, hashCode, NO_VERIFICATION } from "./codes";
import { OtpError } from "./errors";
import type { Limits } from "./limits";
import { localeFor } from "./locale";
import { checkNumberPolicy, normalizeNumber, type CheckedNumber } from "./phone";
import { spendSendAllowance, type SpentAllowance } from "./send-allowance";
import { emptyPostCommit, type DeliveryPlanner, type PostCommit } from "./delivery";
import type { OtpEvents } from "./otp-events";
import type { PinService } from "../pin/pin.service";
import type { DailyCodes } from "../limits/daily-codes";
import { ipLimitKey } from "../shared/ip"; // one key per address (IPv4-mapped → IPv4) and per IPv6 /64
// admin step-up codes (src/tenants/step-up.ts) are not the Verify API's: no lookup by id (check, get, cancel) finds
// one; lookups by number name a purpose, and the API's purposes cannot hold the prefix's ':'
import { NOT_STEP_UP } from "../tenants/step-up-purpose";

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
  /**
   * Send even while the number is blocked ("I didn't request this"): only for the owner's own recovery, which the
   * contact's PIN then protects (the recover journey of a contact with a PIN). Never from the Verify API.
   */
  allowBlocked?: boolean;
}

export interface CheckInput {
  id?: string;
  to?: string;
  purpose?: string;
  code: string;
  clientIp?: string;
  /** the caller asks for the contact's PIN itself after the code (a flow's pin_verify step): no PIN step here */
  pinByFlow?: boolean;
}

export interface CheckResult {
  verification: VerificationRow;
  valid: boolean;
  /** the code was right, but the contact's PIN must be given too (`checkPin`) before the verification approves */
  pinRequired?: boolean;
  /** after a wrong PIN: how many PIN tries are left before the PIN locks */
  pinAttemptsRemaining?: number;
  /** the PIN locked (too many wrong PINs): the verification ended as max_attempts_reached */
  pinLocked?: boolean;
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
  /** the per-tenant daily cap on codes (limits.codesPerDay); absent: not enforced */
  dailyCodes?: DailyCodes;
  /** the contacts' PINs: with it, a right code for a purpose in pin.requireFor also needs the PIN (`checkPin`) */
  pins?: Pick<PinService, "has" | "verify">;
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

  /** The number's send allowance (src/otp/send-allowance.ts), spent once a code is really going out. */
  private spend(who: Actor, settings: TenantSettings, number: CheckedNumber, clientIp: string | undefined, spent: SpentAllowance[]): () => Promise<void> {
    return async () => {
      spent.push(await spendSendAllowance(this.deps, { tenantId: who.tenantId, settings, to: number.e164, prefix: number.prefix, clientIp }));
    };
  }

  /** The planner's SQL side, when it has one: then create and check run on plain SQL (src/db/sql.ts). */
  private get sqlPlanner(): Required<Pick<DeliveryPlanner, "contactStatement" | "contactAfterRace" | "planStatements">> | null {
    const d = this.deps.delivery;
    return d.contactStatement && d.contactAfterRace && d.planStatements ? (d as Required<DeliveryPlanner>) : null;
  }

  /**
   * What both create paths check before any limit: the number's country and type policy (test numbers too), the
   * channel, and for a test number that the channel is WhatsApp (a test number's code never goes out on a paid
   * channel). Returns the test number's entry (its only privilege: a fixed code) and the channel.
   */
  private admit(number: CheckedNumber, input: CreateInput, settings: TenantSettings): { test: ReturnType<typeof testNumberOf>; channel: Channel } {
    checkNumberPolicy(number, settings.phonePolicy);
    const test = testNumberOf(settings, number.e164);
    const channel = input.channel ?? settings.otp.channels[0]!;
    if (!this.deps.delivery.available(channel)) throw new OtpError("channel_unavailable");
    if (test && channel !== "whatsapp") throw new OtpError("channel_unavailable", undefined, "Codes to test numbers go out on WhatsApp only, never by SMS or voice");
    return { test, channel };
  }

  /**
   * Create (send or re-send). Creates for one number and purpose are serialised by a transaction-scoped advisory
   * lock taken without waiting: a create that finds another one under way answers `429 resend_cooldown`
   * (Retry-After 1) at once, and spends nothing. The lock holder decides under the pending row's lock: inside the
   * cool-down `429`, else the code goes out and only then are the limits spent (given back if it fails after all).
   */
  async create(who: Actor, input: CreateInput, ext?: InTx): Promise<VerificationRow> {
    const planner = this.sqlPlanner;
    if (!ext && planner) return this.createSql(who, input, planner);
    const { prisma, clock } = this.deps;
    const now = clock.now();
    const { settings } = await this.settingsOf(prisma, who.tenantId);
    const number = normalizeNumber(input.to);
    const { test, channel } = this.admit(number, input, settings);
    const purpose = input.purpose ?? DEFAULT_PURPOSE;

    const block = await prisma.numberBlock.findUnique({ where: { tenantId_phone: { tenantId: who.tenantId, phone: number.e164 } } });
    if (block && block.until > now && !input.allowBlocked) throw new OtpError("number_blocked", Math.ceil((block.until.getTime() - now.getTime()) / 1000));

    // a request inside the re-send cool-down is refused before it takes a lock or spends any limit
    const seen = await prisma.verification.findFirst({ where: { tenantId: who.tenantId, to: number.e164, purpose, status: "pending" }, select: { nextSendAt: true, expiresAt: true } });
    refuseInCooldown(seen, now);

    const spent: SpentAllowance[] = [];
    const spend = this.spend(who, settings, number, input.clientIp, spent);
    const attempt = () =>
      this.run(ext, async (tx, post) => {
        const [lock] = await tx.$queryRawUnsafe<{ locked: boolean }[]>(TRY_LOCK_NUMBER, createLockKey(who.tenantId, number.e164, purpose));
        if (!lock?.locked) throw new OtpError("resend_cooldown", 1);
        const live = await lockPending(tx, who.tenantId, number.e164, purpose);
        if (live && live.expiresAt.getTime() - now.getTime() > REPLACE_WHEN_LEFT_MS) {
          return this.resend(tx, who, live, channel, settings, now, post, spend);
        }
        await spend();
        if (live) await this.end(tx, who, live.id, live.expiresAt <= now ? "expired" : "canceled", now, post, "replaced by a new code");
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
    return this.withRefund(spent, attempt, !ext);
  }

  /**
   * Runs a create attempt; a failed one gives back what it spent (no code went out). Two creates that raced past
   * the lock (a create that does not take it) meet at the partial unique index: the loser retries once and sees
   * the winner's live code.
   */
  private async withRefund<T>(spent: SpentAllowance[], attempt: () => Promise<T>, mayRetry: boolean): Promise<T> {
    const giveBack = async () => {
      await Promise.all(spent.splice(0).map((s) => s.refund()));
    };
    try {
      return await attempt();
    } catch (err) {
      await giveBack();
      if (!mayRetry || !isUniqueViolation(err)) throw err;
    }
    try {
      return await attempt();
    } catch (err) {
      await giveBack();
      throw err;
    }
  }

  /**
   * `create` on plain SQL, the same steps and guarantees: one read (settings, block, live code) before the lock;
   * then one transaction: the number's create lock, the pending row's lock (with the contact lookup-or-create in
   * the same round trip), the limits (only when a code goes out), and every write (old code ended, new row, audit,
   * event, messages, delivery, COMMIT) in one more round trip.
   */
  private async createSql(who: Actor, input: CreateInput, planner: NonNullable<VerificationService["sqlPlanner"]>): Promise<VerificationRow> {
    const { prisma, clock } = this.deps;
    const now = clock.now();
    const sql = sqlFor(prisma);
    const number = normalizeNumber(input.to);
    const purpose = input.purpose ?? DEFAULT_PURPOSE;
    const [pre] = await sql.query<{ settings: string | null; blockUntil: Date | null; liveNextSendAt: Date | null; liveExpiresAt: Date | null }>(PRE_CREATE, [who.tenantId, number.e164, purpose]);
    if (!pre) throw new Error(`tenant ${who.tenantId} not found`);
    const settings = readSettingsText(who.tenantId, pre.settings);
    const { test, channel } = this.admit(number, input, settings);

    if (pre.blockUntil && pre.blockUntil > now && !input.allowBlocked) throw new OtpError("number_blocked", Math.ceil((pre.blockUntil.getTime() - now.getTime()) / 1000));

    // a request inside the re-send cool-down is refused before it takes a lock or spends any limit
    if (pre.liveExpiresAt) refuseInCooldown({ nextSendAt: pre.liveNextSendAt, expiresAt: pre.liveExpiresAt }, now);
    const eventsUrl = settings.events.url;

    const spent: SpentAllowance[] = [];
    const spend = this.spend(who, settings, number, input.clientIp, spent);
    const attempt = async () => {
      const post = emptyPostCommit();
      const row = await sql.transaction(async (q) => {
        const tryLock: BatchStatement = { statement: TRY_LOCK_NUMBER, values: [createLockKey(who.tenantId, number.e164, purpose)] };
        const lock: BatchStatement = { statement: LOCK_PENDING, values: [who.tenantId, number.e164, purpose] };
        const contactSt = channel === "whatsapp" ? planner.contactStatement(who.tenantId, number.e164) : null;
        const [gotLock, locked, contactRows] = await batch(q, contactSt ? [tryLock, lock, contactSt] : [tryLock, lock]);
        if (!(gotLock![0] as { locked?: boolean } | undefined)?.locked) throw new OtpError("resend_cooldown", 1);
        const contact = contactSt ? ((contactRows![0] as { id: string; lastInboundAt: Date | null } | undefined) ?? (await planner.contactAfterRace(q, who.tenantId, number.e164))) : null;
        const live = locked![0] as unknown as SqlVerification | undefined;
        if (live && live.expiresAt.getTime() - now.getTime() > REPLACE_WHEN_LEFT_MS) {
          return this.resendSql(q, who, live, channel, settings, now, post, spend, contact, planner);
        }
        await spend();
        const writes: BatchStatement[] = [];
        if (live) writes.push(...this.endStatements(eventsUrl, who, live, live.expiresAt <= now ? "expired" : "canceled", now, post, "replaced by a new code"));
        const id = randomUUID();
        const code = test?.code ?? generateCode(settings.otp.codeLength);
        const locale = localeFor(input.locale, number.country, settings.otp.defaultLocale);
        const inserted = writes.length;
        writes.push({
          statement: INSERT_VERIFICATION,
          values: [
            id, who.tenantId, number.e164, purpose, channel, code.length, hashCode(this.deps.keyring, id, code), this.deps.keyring.encrypt("otp-code", code), locale,
            settings.otp.maxAttempts, now, new Date(now.getTime() + cooldown(settings, 1) * 1000), new Date(now.getTime() + settings.otp.expiryMinutes * 60_000),
            input.clientIp ?? null, contact?.id ?? null,
          ],
        });
        writes.push(...this.deps.events.statements(eventsUrl, post, { tenantId: who.tenantId, type: "requested", actor: who.actor, verificationId: id, to: number.e164, purpose, channel, now }));
        writes.push(...planner.planStatements(post, { verificationId: id, channel, reason: "requested", now }, { id, tenantId: who.tenantId, locale, to: number.e164 }, settings, contact));
        writes.push({ statement: SELECT_DELIVERIES, values: [id] });
        const results = await batch(q, writes, { commit: true });
        const created = toRow(results[inserted]![0]!, results[results.length - 1]!);
        // the planner may start on another channel than asked (a paused code template): the row as inserted
        // predates that, the newest delivery tells the channel really used
        const newest = created.deliveries[created.deliveries.length - 1];
        return newest ? { ...created, channel: newest.channel as Channel } : created;
      });
      await this.deps.delivery.afterCommit(post);
      return row;
    };
    return this.withRefund(spent, attempt, true);
  }

  private async resendSql(
    q: Queryable, who: Actor, v: SqlVerification, channel: Channel, settings: TenantSettings, now: Date, post: PostCommit, spend: () => Promise<void>,
    contact: { id: string; lastInboundAt: Date | null } | null, planner: NonNullable<VerificationService["sqlPlanner"]>,
  ): Promise<VerificationRow> {
    refuseInCooldown(v, now);
    await spend();
    const sendCount = v.sendCount + 1;
    const writes: BatchStatement[] = [
      { statement: UPDATE_RESEND, values: [v.id, sendCount, now, new Date(now.getTime() + cooldown(settings, sendCount) * 1000), channel, contact?.id ?? null] },
      ...planner.planStatements(post, { verificationId: v.id, channel, reason: "resend", now }, { id: v.id, tenantId: v.tenantId, locale: v.locale, to: v.to }, settings, contact),
      { statement: SELECT_DELIVERIES, values: [v.id] },
    ];
    const results = await batch(q, writes, { commit: true });
    return toRow(results[0]![0]!, results[results.length - 1]!);
  }

  /** `end` for a row this SQL transaction holds locked (so it is pending): the update and its event, as statements. */
  private endStatements(eventsUrl: string | undefined, who: Actor, v: SqlVerification, status: "expired" | "canceled", now: Date, post: PostCommit, reason?: string): BatchStatement[] {
    return [
      { statement: END_LOCKED, values: [v.id, status, now] },
      ...this.deps.events.statements(eventsUrl, post, { tenantId: who.tenantId, type: status, actor: who.actor, verificationId: v.id, to: v.to, purpose: v.purpose, channel: v.channel, now, reason, attempts: v.attempts }),
    ];
  }

  /**
   * `check` on plain SQL, the same steps and guarantees: one read (settings and the pending verification)
   * before the limits; then one transaction: the single conditional UPDATE (which alone decides, across processes,
   * who wins), then the audit rows, events and the deliveries list with COMMIT in one more round trip.
   */
  private async checkSql(who: Actor, input: CheckInput): Promise<CheckResult> {
    const { prisma, limits, clock, keyring } = this.deps;
    const now = clock.now();
    const sql = sqlFor(prisma);
    let number: ReturnType<typeof normalizeNumber> | undefined;
    let numberError: unknown;
    if (!input.id) {
      try {
        number = normalizeNumber(input.to ?? "");
      } catch (err) {
        numberError = err;
      }
    }
    type Pre = { settings: string | null } & Partial<SqlVerification>;
    const [pre] = input.id
      ? isUuid(input.id)
        ? await sql.query<Pre>(PRE_CHECK_BY_ID, [who.tenantId, input.id])
        : await sql.query<Pre>(PRE_SETTINGS, [who.tenantId])
      : number
        ? await sql.query<Pre>(PRE_CHECK_BY_TO, [who.tenantId, number.e164, input.purpose ?? DEFAULT_PURPOSE])
        : await sql.query<Pre>(PRE_SETTINGS, [who.tenantId]);
    if (!pre) throw new Error(`tenant ${who.tenantId} not found`);
    const settings = readSettingsText(who.tenantId, pre.settings);
    await limits.consume("checks_tenant", who.tenantId, settings.limits.checksPerTenantPerMinute, 60);
    if (input.clientIp) await limits.consume("ip", `${who.tenantId}:check:${ipLimitKey(input.clientIp)}`, settings.limits.ipPerHour * 10, 3600);
    if (numberError) throw numberError;

    let v: SqlVerification | null = pre.id ? (pre as SqlVerification) : null;
    if (v && input.id && input.purpose && v.purpose !== input.purpose) v = null;
    // hashed before the verdict, found or not: an unknown number costs the same hashing as a wrong code
    const valid = codeMatches(keyring, v?.id ?? NO_VERIFICATION.id, input.code, v?.codeHash ?? NO_VERIFICATION.codeHash) && v !== null;
    await this.guardFound(who, settings, v, input, now);
    if (!v) throw new OtpError("verification_not_found"); // unreachable (guardFound threw): narrows the type
    if (valid && (await this.needsPin(prisma, who, settings, v, input))) return this.holdForPin(who, v, now, undefined);

    const found = v;
    const eventsUrl = settings.events.url;
    const post = emptyPostCommit();
    const row = await sql.transaction(async (q) => {
      const [updated] = await batch(q, [{ statement: UPDATE_CHECK, values: [valid, now, found.id] }]);
      const result = updated![0] as unknown as SqlVerification | undefined;
      if (!result) return null; // another request ended it first
      const base = { tenantId: who.tenantId, actor: who.actor, verificationId: found.id, to: found.to, purpose: found.purpose, channel: found.channel, now };
      const writes: BatchStatement[] = [...this.deps.events.statements(eventsUrl, post, { ...base, type: valid ? "checked_right" : "checked_wrong", attempts: result.attempts })];
      if (result.status === "approved") writes.push(...this.deps.events.statements(eventsUrl, post, { ...base, type: "approved", attempts: result.attempts }));
      if (result.status === "max_attempts_reached") writes.push(...this.deps.events.statements(eventsUrl, post, { ...base, type: "locked", attempts: result.attempts }));
      writes.push({ statement: SELECT_DELIVERIES, values: [found.id] });
      const results = await batch(q, writes, { commit: true });
      return toRow(result as unknown as Record<string, unknown>, results[results.length - 1]!);
    });
    await this.deps.delivery.afterCommit(post);
    if (!row) throw new OtpError("verification_not_found");
    return { verification: row, valid: row.status === "approved" && valid };
  }

  private async resend(tx: Tx, who: Actor, live: { id: string }, channel: Channel, settings: TenantSettings, now: Date, post: PostCommit, spend: () => Promise<void>): Promise<VerificationRow> {
    const v = await tx.verification.findUniqueOrThrow({ where: { id: live.id } });
    refuseInCooldown(v, now);
    await spend();
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
    if (!ext && this.sqlPlanner) return this.checkSql(who, input);
    const { prisma, limits, clock, keyring } = this.deps;
    const now = clock.now();
    const { settings } = await this.settingsOf(prisma, who.tenantId);
    await limits.consume("checks_tenant", who.tenantId, settings.limits.checksPerTenantPerMinute, 60);
    if (input.clientIp) await limits.consume("ip", `${who.tenantId}:check:${ipLimitKey(input.clientIp)}`, settings.limits.ipPerHour * 10, 3600);

    let v;
    if (input.id) {
      v = isUuid(input.id) ? await prisma.verification.findFirst({ where: { id: input.id, tenantId: who.tenantId, status: "pending", ...NOT_STEP_UP } }) : null;
      if (v && input.purpose && v.purpose !== input.purpose) v = null;
    } else {
      const number = normalizeNumber(input.to ?? "");
      v = await prisma.verification.findFirst({ where: { tenantId: who.tenantId, to: number.e164, purpose: input.purpose ?? DEFAULT_PURPOSE, status: "pending" } });
    }
    const valid = codeMatches(keyring, v?.id ?? NO_VERIFICATION.id, input.code, v?.codeHash ?? NO_VERIFICATION.codeHash) && v !== null;
    await this.guardFound(who, settings, v, input, now);
    if (!v) throw new OtpError("verification_not_found"); // unreachable (guardFound threw): narrows the type
    if (valid && (await this.needsPin(ext?.tx ?? prisma, who, settings, v, input))) return this.holdForPin(who, v, now, ext);

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

  // --- the PIN step (pin.requireFor; docs/verify-api.md, "Two-step verification") ------------------------------

  /** The contact a verification's number belongs to (the row's link, else the tenant's contact with that number). */
  private async contactOf(db: Tx | PrismaClient, tenantId: string, v: { to: string; contactId: string | null }): Promise<string | null> {
    if (v.contactId) return v.contactId;
    const c = await db.contact.findFirst({ where: { tenantId, OR: [{ phoneE164: v.to }, { waId: v.to.slice(1) }] }, orderBy: { createdAt: "asc" }, select: { id: true } });
    return c?.id ?? null;
  }

  /** Whether a right code must be followed by the contact's PIN: the tenant asks for it for this purpose and a PIN is set. */
  private async needsPin(db: Tx | PrismaClient, who: Actor, settings: TenantSettings, v: { to: string; purpose: string; contactId: string | null }, input: CheckInput): Promise<boolean> {
    if (input.pinByFlow || !this.deps.pins || !settings.pin.requireFor.includes(v.purpose)) return false;
    const contactId = await this.contactOf(db, who.tenantId, v);
    return contactId !== null && (await this.deps.pins.has(db as Tx, contactId));
  }

  /** A right code of a PIN-protected purpose: the verification stays pending, marked code-verified, until `checkPin`. */
  private async holdForPin(who: Actor, v: { id: string; to: string; purpose: string; channel: string; attempts: number }, now: Date, ext: InTx | undefined): Promise<CheckResult> {
    const row = await this.run(ext, async (tx, post) => {
      const n = await tx.$executeRaw`
        UPDATE verifications SET code_verified_at = COALESCE(code_verified_at, ${now}::timestamptz), updated_at = ${now}::timestamptz
         WHERE id = ${v.id}::uuid AND status = 'pending' AND expires_at > ${now}::timestamptz`;
      if (n === 0) return null;
      await this.deps.events.record(tx, post, { tenantId: who.tenantId, type: "checked_right", actor: who.actor, verificationId: v.id, to: v.to, purpose: v.purpose, channel: v.channel, now, attempts: v.attempts });
      return loadRow(tx, v.id);
    });
    if (!row) throw new OtpError("verification_not_found");
    return { verification: row, valid: false, pinRequired: true };
  }

  /**
   * The second step of a PIN-protected check: the contact's PIN for a verification whose code was right. A right PIN
   * approves it (once: a conditional write); a wrong one counts against the PIN's attempts (src/pin/pin.service.ts)
   * and leaves it pending; the attempt that locks the PIN ends it as `max_attempts_reached`. The same limits as a
   * code check apply. Not waiting for a PIN (no right code yet): `409 pin_not_expected`.
   */
  async checkPin(who: Actor, input: { id: string; pin: string; clientIp?: string }, ext?: InTx): Promise<CheckResult> {
    const { prisma, limits, clock } = this.deps;
    const now = clock.now();
    const db = ext?.tx ?? prisma;
    const { settings } = await this.settingsOf(prisma, who.tenantId);
    await limits.consume("checks_tenant", who.tenantId, settings.limits.checksPerTenantPerMinute, 60);
    if (input.clientIp) await limits.consume("ip", `${who.tenantId}:check:${ipLimitKey(input.clientIp)}`, settings.limits.ipPerHour * 10, 3600);
    const v = isUuid(input.id) ? await db.verification.findFirst({ where: { id: input.id, tenantId: who.tenantId, status: "pending", ...NOT_STEP_UP } }) : null;
    await this.guardFound(who, settings, v, { id: input.id, code: "" }, now);
    if (!v) throw new OtpError("verification_not_found"); // unreachable (guardFound threw)
    if (!v.codeVerifiedAt || !this.deps.pins) throw new OtpError("pin_not_expected");
    const contactId = await this.contactOf(db, who.tenantId, v);
    const r = contactId ? await this.deps.pins.verify(db as Tx, { tenantId: who.tenantId, contactId, pin: input.pin }) : ({ status: "not_set" } as const);
    if (r.status === "wrong") return { verification: await loadRow(db, v.id), valid: false, pinRequired: true, pinAttemptsRemaining: r.attemptsLeft };
    // a PIN removed meanwhile (its owner's reset link): the right code stands alone again
    const status = r.status === "locked" ? "max_attempts_reached" : "approved";
    const row = await this.run(ext, async (tx, post) => {
      const n = await tx.verification.updateMany({ where: { id: v.id, status: "pending", expiresAt: { gt: now } }, data: { status, endedAt: now, codeEnc: null } });
      if (n.count === 0) return null; // another request ended it first
      const base = { tenantId: who.tenantId, actor: who.actor, verificationId: v.id, to: v.to, purpose: v.purpose, channel: v.channel, now, attempts: v.attempts };
      await this.deps.events.record(tx, post, { ...base, type: status === "approved" ? "approved" : "locked", reason: status === "approved" ? "pin" : "pin_locked" });
      return loadRow(tx, v.id);
    });
    if (!row) throw new OtpError("verification_not_found");
    if (status === "max_attempts_reached") this.deps.logger.warn({ to: maskPhone(v.to), purpose: v.purpose }, "verification ended: the PIN locked");
    return status === "approved" ? { verification: row, valid: true } : { verification: row, valid: false, pinLocked: true };
  }

  /**
   * After the lookup, the same on both check paths: the per-number check limit (counted whether or not a
   * verification was found, so unknown numbers cost the same), then "not found" or an expired code.
   */
  private async guardFound(who: Actor, settings: TenantSettings, v: { id: string; to: string; expiresAt: Date } | null, input: CheckInput, now: Date): Promise<void> {
    const numberKey = `${who.tenantId}:${v?.to ?? input.to ?? input.id}`;
    await this.deps.limits.consume("checks_number", numberKey, settings.limits.checksPerNumberPer10Minutes, 600);
    if (!v) throw new OtpError("verification_not_found");
    if (v.expiresAt <= now) {
      await this.expire(v.id, who.actor);
      throw new OtpError("verification_not_found", undefined, "The code has expired: request a new one");
    }
  }

  async get(who: Actor, id: string): Promise<VerificationRow> {
    if (!isUuid(id)) throw new OtpError("verification_not_found");
    let v = await this.deps.prisma.verification.findFirst({ where: { id, tenantId: who.tenantId, ...NOT_STEP_UP }, include: { deliveries: { orderBy: { createdAt: "asc" } } } });
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

/** Inside a live code's re-send cool-down (and not about to replace it): `429 resend_cooldown` with Retry-After. */
function refuseInCooldown(live: { nextSendAt: Date | null; expiresAt: Date } | null, now: Date): void {
  if (live?.nextSendAt && live.nextSendAt > now && live.expiresAt.getTime() - now.getTime() > REPLACE_WHEN_LEFT_MS) {
    throw new OtpError("resend_cooldown", Math.max(1, Math.ceil((live.nextSendAt.getTime() - now.getTime()) / 1000)));
  }
}

/**
 * The create lock of one number and purpose (a transaction-scoped advisory lock, taken without waiting: a create
 * that finds it held answers at once instead of holding a connection in a queue). Its key is a 64-bit hash of
 * the tenant, number and purpose.
 */
const TRY_LOCK_NUMBER = `SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 0)) AS locked`;
function createLockKey(tenantId: string, to: string, purpose: string): string {
  return `otp-create:${tenantId}:${to}:${purpose}`;
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

/** A verification row as the SQL statements below return it (Prisma's field names). */
type SqlVerification = Omit<VerificationRow, "deliveries">;

const VERIFICATION_COLUMNS = `id, tenant_id AS "tenantId", "to", purpose, channel, status::text AS status, code_length AS "codeLength",
  code_hash AS "codeHash", code_enc AS "codeEnc", locale, attempts, max_attempts AS "maxAttempts", send_count AS "sendCount",
  last_sent_at AS "lastSentAt", next_send_at AS "nextSendAt", expires_at AS "expiresAt", ended_at AS "endedAt",
  client_ip AS "clientIp", contact_id AS "contactId", code_verified_at AS "codeVerifiedAt", created_at AS "createdAt", updated_at AS "updatedAt"`;

const DELIVERY_COLUMNS = `id, verification_id AS "verificationId", channel, provider, status, message_id AS "messageId",
  provider_ref AS "providerRef", error_code AS "errorCode", reason, created_at AS "createdAt", updated_at AS "updatedAt"`;

/** create's one read before the limits: the settings, a block of the number, the live code's cool-down */
const PRE_CREATE = `SELECT t.settings::text AS settings,
  (SELECT b.until FROM number_blocks b WHERE b.tenant_id = t.id AND b.phone = $2::text) AS "blockUntil",
  l.next_send_at AS "liveNextSendAt", l.expires_at AS "liveExpiresAt"
FROM tenants t
LEFT JOIN LATERAL (SELECT next_send_at, expires_at FROM verifications
  WHERE tenant_id = t.id AND "to" = $2::text AND purpose = $3::text AND status = 'pending' LIMIT 1) l ON true
WHERE t.id = $1::uuid`;

const PRE_SETTINGS = `SELECT settings::text AS settings FROM tenants WHERE id = $1::uuid`;

const PRE_CHECK_BY_ID = `SELECT t.settings::text AS settings, v.* FROM tenants t
LEFT JOIN LATERAL (SELECT ${VERIFICATION_COLUMNS} FROM verifications
  WHERE id = $2::uuid AND tenant_id = t.id AND status = 'pending' AND NOT starts_with(purpose, 'step_up:')) v ON true
WHERE t.id = $1::uuid`;

const PRE_CHECK_BY_TO = `SELECT t.settings::text AS settings, v.* FROM tenants t
LEFT JOIN LATERAL (SELECT ${VERIFICATION_COLUMNS} FROM verifications
  WHERE tenant_id = t.id AND "to" = $2::text AND purpose = $3::text AND status = 'pending' LIMIT 1) v ON true
WHERE t.id = $1::uuid`;

const LOCK_PENDING = `SELECT ${VERIFICATION_COLUMNS} FROM verifications
 WHERE tenant_id = $1::uuid AND "to" = $2::text AND purpose = $3::text AND status = 'pending'
 FOR UPDATE`;

const INSERT_VERIFICATION = `INSERT INTO verifications (id, tenant_id, "to", purpose, channel, code_length, code_hash, code_enc, locale,
  max_attempts, send_count, last_sent_at, next_send_at, expires_at, client_ip, contact_id, updated_at)
VALUES ($1::uuid, $2::uuid, $3::text, $4::text, $5::text, $6::int, $7::text, $8::text, $9::text,
  $10::int, 1, $11::timestamptz, $12::timestamptz, $13::timestamptz, $14::text, $15::uuid, now())
RETURNING ${VERIFICATION_COLUMNS}`;

const UPDATE_RESEND = `UPDATE verifications
   SET send_count = $2::int, last_sent_at = $3::timestamptz, next_send_at = $4::timestamptz, channel = $5::text,
       contact_id = COALESCE($6::uuid, contact_id), updated_at = now()
 WHERE id = $1::uuid
RETURNING ${VERIFICATION_COLUMNS}`;

const END_LOCKED = `UPDATE verifications SET status = $2::text::"VerificationStatus", ended_at = $3::timestamptz, code_enc = NULL, updated_at = now()
 WHERE id = $1::uuid AND status = 'pending'`;

/** the one conditional write of a check (see \`check\`) */
const UPDATE_CHECK = `UPDATE verifications
   SET attempts = attempts + 1,
       status = (CASE WHEN $1::boolean THEN 'approved'
                      WHEN attempts + 1 >= max_attempts THEN 'max_attempts_reached'
                      ELSE 'pending' END)::"VerificationStatus",
       ended_at = CASE WHEN $1::boolean OR attempts + 1 >= max_attempts THEN $2::timestamptz ELSE NULL END,
       code_enc = CASE WHEN $1::boolean OR attempts + 1 >= max_attempts THEN NULL ELSE code_enc END,
       updated_at = $2::timestamptz
 WHERE id = $3::uuid AND status = 'pending' AND expires_at > $2::timestamptz AND attempts < max_attempts
RETURNING ${VERIFICATION_COLUMNS}`;

const SELECT_DELIVERIES = `SELECT ${DELIVERY_COLUMNS} FROM otp_deliveries WHERE verification_id = $1::uuid ORDER BY created_at ASC`;

function toRow(v: Record<string, unknown>, deliveries: Record<string, unknown>[]): VerificationRow {
  return { ...(v as unknown as SqlVerification), deliveries: deliveries as unknown as VerificationRow["deliveries"] };
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; meta?: unknown; message?: string };
  return e?.code === "P2002" || /23505|unique constraint/i.test(String(e?.message ?? ""));
}


const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(v: string): boolean {
  return UUID.test(v);
}
