import { randomUUID } from "node:crypto";
import { recordAudit } from "../audit/audit";
import { transaction, type Prisma, type PrismaClient } from "../db/prisma";
import { maskPhone, type Logger } from "../observability/logger";
import { generateCode } from "../otp/codes";
import { emptyPostCommit, type DeliveryPlanner } from "../otp/delivery";
import { OtpError } from "../otp/errors";
import type { Limits } from "../otp/limits";
import { normalizeNumber } from "../otp/phone";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import type { Principal } from "./api-keys";
import { STEP_UP_PURPOSE_PREFIX } from "./step-up-purpose";

/**
 * Step-up for administrators (../shared/docs/brief.md: "security-sensitive changes to the bot's account or
 * settings are confirmed with a code"). A tenant's own admin key asking for one of HELD_ACTIONS does not change
 * anything: the change is stored encrypted as a HeldChange, a code goes over WhatsApp to the tenant's admin number,
 * and only `confirm` with that code applies it. So a leaked tenant admin key alone cannot rotate the token, mint
 * keys, open the country policy, weaken the OTP limits, redirect the events, publish sensitive flows or delete flows.
 *
 * The step-up code has its own code path, never the Verify API's: a random code (CSPRNG), its keyed hash on the
 * HeldChange row, at most STEP_UP_MAX_ATTEMPTS tries, STEP_UP_EXPIRY_MS of life, and fixed send and wrong-code
 * limits. No tenant setting plays a part (no test number, no tenant maxAttempts or limits: those are what a leaked
 * admin key could change). The code goes out as the authentication template through the ordinary outbound path;
 * the verification row that carries it to the send worker (purpose `step_up:…`) holds only its encrypted copy
 * for that worker, never a hash that approves anything, and is invisible to the Verify API, the chat and the console.
 *
 * The deployment's ADMIN_API_KEY is the break-glass: it applies at once (e.g. while the access token is expired and
 * no code can be sent), and every such use is audited as `step_up.bypassed`. Revoking a key or a login is never
 * held: stopping access must not wait for a phone.
 */
export const HELD_ACTIONS = [
  "tenant.rotate_token",
  "tenant.set_app_secret",
  "tenant.set_admin_number",
  "tenant.set_waba_id",
  "api_key.create",
  /** kept for held changes made before settings.security (same applier) */
  "settings.phone_policy",
  "settings.security",
  "events.callback",
  "events.rotate_secret",
  "flow.delete",
  "flow.publish",
  "flow.rollback",
] as const;
export type HeldAction = (typeof HELD_ACTIONS)[number];

export { STEP_UP_PURPOSE_PREFIX, isStepUpPurpose } from "./step-up-purpose";

/** Fixed, whatever the tenant's settings say. */
export const STEP_UP_CODE_LENGTH = 6;
export const STEP_UP_MAX_ATTEMPTS = 5;
export const STEP_UP_EXPIRY_MS = 10 * 60_000;
/** codes sent to one tenant's admin number: per 10 minutes, and per day */
export const STEP_UP_SENDS = { per10Minutes: 10, perDay: 40 } as const;
/** wrong step-up codes per tenant per hour, across held changes (5 per change is the other bound) */
export const STEP_UP_WRONG_PER_HOUR = 20;

/** What an applied change answers; `secret` parts (a new key) are returned once and never stored. */
export interface ApplyResult {
  status: number;
  body: Record<string, unknown>;
  /** kept on the HeldChange row (the body without secrets); default: the body */
  stored?: Record<string, unknown>;
}
export type Applier = (tenantId: string, payload: Record<string, unknown>, actor: string) => Promise<ApplyResult>;

export class StepUpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface HeldView {
  id: string;
  tenantId: string;
  action: string;
  status: string;
  requestedBy: string;
  sentTo: string | undefined;
  expiresAt: string;
  createdAt: string;
  resolvedAt: string | null;
  result: unknown;
}

export interface StepUpDeps {
  prisma: PrismaClient;
  keyring: Keyring;
  /** the outbound path of codes (the authentication template); only `plan`/`afterCommit`, never the Verify API */
  delivery: Pick<DeliveryPlanner, "plan" | "afterCommit">;
  /** Redis windows for the fixed step-up send and wrong-code limits */
  limits: Pick<Limits, "consume">;
  clock: Clock;
  logger: Logger;
}

/** the keyed hash of a step-up code, bound to its held change */
const hashOf = (keyring: Keyring, heldId: string, code: string) => keyring.keyedHash("otp-hash", `step-up:${heldId}`, code);

export class StepUp {
  private readonly appliers = new Map<HeldAction, Applier>();

  constructor(private readonly deps: StepUpDeps) {}

  /** Each router registers how to apply the actions it holds (the confirm route may live elsewhere). */
  register(action: HeldAction, applier: Applier): void {
    this.appliers.set(action, applier);
  }

  /**
   * The one entry point of a sensitive route: the break-glass key applies now (audited), a tenant key's change
   * is held and a code sent. Answers what the route sends: the applied result, or `202` with the held change.
   * The route validates the payload in full before calling this: a change that could not apply sends no code.
   */
  async run(principal: Principal, tenantId: string, action: HeldAction, payload: Record<string, unknown>): Promise<ApplyResult> {
    const applier = this.applierOf(action);
    if (principal.superAdmin) {
      const result = await applier(tenantId, payload, principal.actor);
      await this.audit(tenantId, "step_up.bypassed", principal.actor, { action, breakGlass: true });
      return result;
    }
    const held = await this.hold(principal, tenantId, action, payload);
    return { status: 202, body: { stepUp: held, message: `Held until the code sent to ${held.sentTo} is confirmed: POST /admin/step-ups/${held.id}/confirm {"code": "…"}` } };
  }

  private async hold(principal: Principal, tenantId: string, action: HeldAction, payload: Record<string, unknown>): Promise<HeldView> {
    const { prisma, keyring, delivery, limits, clock } = this.deps;
    const tenant = await prisma.tenant.findUniqueOrThrow({ where: { id: tenantId }, select: { adminNumber: true } });
    if (!tenant.adminNumber) {
      throw new StepUpError(409, "step_up_unavailable", "This change needs a code sent to the tenant's admin number, and none is set: set one with the deployment's ADMIN_API_KEY (PUT /admin/tenants/{id}/admin-number), or make the change with that key");
    }
    let adminNumber: string;
    try {
      adminNumber = normalizeNumber(tenant.adminNumber).e164;
    } catch {
      throw new StepUpError(409, "step_up_unavailable", "The tenant's admin number cannot receive codes: set a valid one with the deployment's ADMIN_API_KEY, or make the change with that key");
    }
    const now = clock.now();
    // the admin reported an unrequested code ("I didn't request this"): no step-up codes while the block lasts
    const block = await prisma.numberBlock.findUnique({ where: { tenantId_phone: { tenantId, phone: adminNumber } } });
    if (block && block.until > now) throw new OtpError("number_blocked", Math.ceil((block.until.getTime() - now.getTime()) / 1000));
    // fixed limits, never the tenant's: nothing is held when one is reached
    const key = `${tenantId}:${adminNumber}`;
    await limits.consume("step_up_sends", `10m:${key}`, STEP_UP_SENDS.per10Minutes, 600, "send_limit_reached");
    await limits.consume("step_up_sends", `1d:${key}`, STEP_UP_SENDS.perDay, 86_400, "send_limit_reached");

    const id = randomUUID();
    const verificationId = randomUUID();
    const code = generateCode(STEP_UP_CODE_LENGTH);
    const expiresAt = new Date(now.getTime() + STEP_UP_EXPIRY_MS);
    const post = emptyPostCommit();
    const row = await transaction(prisma, async (tx) => {
      // the carrier of the code to the send worker: its copy encrypted (erased when the change resolves), a hash
      // of nothing anyone knows, and no attempts: no check of the Verify API or the chat can ever approve it
      await tx.verification.create({
        data: {
          id: verificationId,
          tenantId,
          to: adminNumber,
          purpose: `${STEP_UP_PURPOSE_PREFIX}${id.slice(0, 8)}`,
          channel: "whatsapp",
          codeLength: code.length,
          codeHash: keyring.keyedHash("otp-hash", verificationId, randomUUID()),
          codeEnc: keyring.encrypt("otp-code", code),
          maxAttempts: 0,
          sendCount: 1,
          lastSentAt: now,
          nextSendAt: expiresAt,
          expiresAt,
        },
      });
      const held = await tx.heldChange.create({
        data: {
          id,
          tenantId,
          action,
          payloadEnc: keyring.encrypt("held-change", JSON.stringify(payload)),
          requestedBy: principal.actor,
          requestedKeyId: principal.keyId,
          verificationId,
          codeHash: hashOf(keyring, id, code),
          expiresAt,
          createdAt: now,
        },
      });
      await delivery.plan(tx, post, { verificationId, channel: "whatsapp", reason: "requested", now });
      return held;
    });
    await delivery.afterCommit(post);
    await this.audit(tenantId, "step_up.requested", principal.actor, { action, heldChangeId: id, sentTo: maskPhone(adminNumber) });
    return view(row, adminNumber);
  }

  /**
   * Applies a held change when the code is right. Wrong codes count against the change's fixed attempts (and a
   * fixed per-tenant hourly window); the comparison is constant-time and its outcome one conditional UPDATE, so
   * of two racing right answers one applies.
   */
  async confirm(principal: Principal, id: string, code: string): Promise<{ stepUp: HeldView; status: number; body: Record<string, unknown> }> {
    const { prisma, keyring, clock, limits } = this.deps;
    const row = await this.find(principal, id);
    const now = clock.now();
    if (row.status !== "pending") throw new StepUpError(409, "step_up_not_pending", `This change is ${row.status}`);
    if (row.expiresAt <= now) {
      await this.resolve(id, "expired", now, row.verificationId);
      throw new StepUpError(409, "step_up_not_pending", "This change expired: ask again");
    }
    if (!row.codeHash) {
      // made before step-up codes had their own path: never confirmable
      await this.resolve(id, "failed", now, row.verificationId);
      throw new StepUpError(409, "step_up_not_pending", "The code for this change is no longer valid: ask again");
    }
    // the hash is computed before anything else is decided (a constant-time comparison, one HMAC per key)
    const valid = keyring.verifyHash("otp-hash", row.codeHash, `step-up:${id}`, code).ok;
    if (!valid) await limits.consume("step_up_checks", row.tenantId, STEP_UP_WRONG_PER_HOUR, 3600);
    const updated = await prisma.$queryRaw<{ status: string; attempts: number }[]>`
      UPDATE held_changes
         SET attempts = attempts + CASE WHEN ${valid}::boolean THEN 0 ELSE 1 END,
             status = CASE WHEN ${valid}::boolean THEN 'applying'
                           WHEN attempts + 1 >= ${STEP_UP_MAX_ATTEMPTS}::int THEN 'failed'
                           ELSE 'pending' END,
             resolved_at = CASE WHEN NOT ${valid}::boolean AND attempts + 1 >= ${STEP_UP_MAX_ATTEMPTS}::int THEN ${now}::timestamptz ELSE resolved_at END
       WHERE id = ${id}::uuid AND status = 'pending' AND expires_at > ${now}::timestamptz AND attempts < ${STEP_UP_MAX_ATTEMPTS}::int
   RETURNING status, attempts`;
    const result = updated[0];
    if (!result) throw new StepUpError(409, "step_up_not_pending", "This change is no longer pending");
    if (!valid) {
      const left = Math.max(0, STEP_UP_MAX_ATTEMPTS - result.attempts);
      const ended = result.status !== "pending";
      if (ended) await this.endCarrier(row.verificationId, "canceled", now);
      await this.audit(row.tenantId, "step_up.wrong_code", principal.actor, { action: row.action, heldChangeId: id, attemptsLeft: left });
      throw new StepUpError(422, "invalid_code", ended ? "Wrong code; too many attempts: this change is refused" : "Wrong code", { attemptsLeft: left });
    }
    // the code was right and this request claimed the change
    await this.endCarrier(row.verificationId, "approved", now);
    const payload = JSON.parse(keyring.decryptString("held-change", row.payloadEnc)) as Record<string, unknown>;
    let applied: ApplyResult;
    try {
      applied = await this.applierOf(row.action as HeldAction)(row.tenantId, payload, `${row.requestedBy} (step-up)`);
    } catch (err) {
      await prisma.heldChange.update({ where: { id }, data: { status: "failed", resolvedAt: clock.now(), result: { error: err instanceof Error ? err.message : String(err) } } });
      throw err;
    }
    const done = await prisma.heldChange.update({
      where: { id },
      data: { status: "applied", resolvedAt: clock.now(), result: (applied.stored ?? applied.body) as Prisma.InputJsonValue },
    });
    await this.audit(row.tenantId, "step_up.confirmed", principal.actor, { action: row.action, heldChangeId: id });
    return { stepUp: view(done, undefined), status: applied.status === 202 ? 200 : applied.status, body: applied.body };
  }

  async cancel(principal: Principal, id: string): Promise<HeldView> {
    const row = await this.find(principal, id);
    const now = this.deps.clock.now();
    const moved = await this.deps.prisma.heldChange.updateMany({ where: { id, status: "pending" }, data: { status: "canceled", resolvedAt: now } });
    if (moved.count !== 1) throw new StepUpError(409, "step_up_not_pending", `This change is ${row.status}`);
    await this.endCarrier(row.verificationId, "canceled", now);
    await this.audit(row.tenantId, "step_up.canceled", principal.actor, { action: row.action, heldChangeId: id });
    return view(await this.deps.prisma.heldChange.findUniqueOrThrow({ where: { id } }), undefined);
  }

  async get(principal: Principal, id: string): Promise<HeldView> {
    return view(await this.find(principal, id), undefined);
  }

  async list(tenantId: string, status?: string): Promise<HeldView[]> {
    const rows = await this.deps.prisma.heldChange.findMany({ where: { tenantId, ...(status ? { status } : {}) }, orderBy: { createdAt: "desc" }, take: 100 });
    return rows.map((r) => view(r, undefined));
  }

  /** ends a pending change (expired, failed) and its code's carrier */
  private async resolve(id: string, status: "expired" | "failed", now: Date, verificationId: string | null): Promise<void> {
    await this.deps.prisma.heldChange.updateMany({ where: { id, status: "pending" }, data: { status, resolvedAt: now } });
    await this.endCarrier(verificationId, "canceled", now);
  }

  /** the code's carrier row ends with its change: its encrypted copy is erased, so the code is never sent again */
  private async endCarrier(verificationId: string | null, status: "approved" | "canceled", now: Date): Promise<void> {
    if (!verificationId) return;
    await this.deps.prisma.verification.updateMany({
      where: { id: verificationId, status: "pending", purpose: { startsWith: STEP_UP_PURPOSE_PREFIX } },
      data: { status, endedAt: now, codeEnc: null },
    });
  }

  /** a tenant key sees only its own tenant's changes; another's id is "not found" */
  private async find(principal: Principal, id: string) {
    const row = /^[0-9a-f-]{36}$/i.test(id) ? await this.deps.prisma.heldChange.findUnique({ where: { id } }) : null;
    if (!row || (!principal.superAdmin && row.tenantId !== principal.tenantId)) throw new StepUpError(404, "step_up_not_found", "No such held change");
    return row;
  }

  private applierOf(action: HeldAction): Applier {
    const a = this.appliers.get(action);
    if (!a) throw new Error(`no applier registered for ${action}`);
    return a;
  }

  private audit(tenantId: string, type: string, actor: string, data: Record<string, unknown>) {
    return recordAudit(this.deps.prisma, { tenantId, type, actor, data, at: this.deps.clock.now() });
  }
}

function view(
  r: { id: string; tenantId: string; action: string; status: string; requestedBy: string; expiresAt: Date; createdAt: Date; resolvedAt: Date | null; result: unknown },
  adminNumber: string | undefined,
): HeldView {
  return {
    id: r.id,
    tenantId: r.tenantId,
    action: r.action,
    status: r.status,
    requestedBy: r.requestedBy,
    sentTo: adminNumber ? maskPhone(adminNumber) : undefined,
    expiresAt: r.expiresAt.toISOString(),
    createdAt: r.createdAt.toISOString(),
    resolvedAt: r.resolvedAt?.toISOString() ?? null,
    result: r.result ?? null,
  };
}
