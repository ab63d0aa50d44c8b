import { recordAudit } from "../audit/audit";
import type { Prisma, PrismaClient } from "../db/prisma";
import { maskPhone, type Logger } from "../observability/logger";
import { OtpError } from "../otp/errors";
import type { VerificationService } from "../otp/verification.service";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import type { Principal } from "./api-keys";

/**
 * Step-up for administrators (../shared/docs/brief.md: "security-sensitive changes to the bot's account or
 * settings are confirmed with a code"). A tenant's own admin key asking for one of HELD_ACTIONS does not change
 * anything: the change is stored encrypted as a HeldChange, a code goes over WhatsApp to the tenant's admin number,
 * and only `confirm` with that code applies it. So a leaked tenant admin key alone cannot rotate the token, mint
 * keys, open the country policy, redirect the events, or delete flows.
 *
 * The deployment's ADMIN_API_KEY is the break-glass: it applies at once (e.g. while the access token is expired and
 * no code can be sent), and every such use is audited as `step_up.bypassed`. Revoking a key or a login is never
 * held: stopping access must not wait for a phone.
 */
export const HELD_ACTIONS = [
  "tenant.rotate_token",
  "tenant.set_app_secret",
  "tenant.set_admin_number",
  "api_key.create",
  "settings.phone_policy",
  "events.callback",
  "events.rotate_secret",
  "flow.delete",
] as const;
export type HeldAction = (typeof HELD_ACTIONS)[number];

/** The code's verification purpose. The ':' keeps it out of the Verify API's purpose pattern and the chat. */
export const STEP_UP_PURPOSE_PREFIX = "step_up:";
export const isStepUpPurpose = (purpose: string | null | undefined): boolean => !!purpose?.startsWith(STEP_UP_PURPOSE_PREFIX);

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
  verifications: Pick<VerificationService, "create" | "check" | "cancel">;
  clock: Clock;
  logger: Logger;
}

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
    const { prisma, keyring, verifications, clock } = this.deps;
    const tenant = await prisma.tenant.findUniqueOrThrow({ where: { id: tenantId }, select: { adminNumber: true } });
    if (!tenant.adminNumber) {
      throw new StepUpError(409, "step_up_unavailable", "This change needs a code sent to the tenant's admin number, and none is set: set one with the deployment's ADMIN_API_KEY (PUT /admin/tenants/{id}/admin-number), or make the change with that key");
    }
    const id = crypto.randomUUID();
    // a limit on the admin number (5 codes / 10 min) or a blocked number throws its OtpError: nothing is held
    const verification = await verifications.create(
      { tenantId, actor: principal.actor },
      { to: tenant.adminNumber, channel: "whatsapp", purpose: `${STEP_UP_PURPOSE_PREFIX}${id.slice(0, 8)}` },
    );
    const row = await prisma.heldChange.create({
      data: {
        id,
        tenantId,
        action,
        payloadEnc: keyring.encrypt("held-change", JSON.stringify(payload)),
        requestedBy: principal.actor,
        requestedKeyId: principal.keyId,
        verificationId: verification.id,
        expiresAt: verification.expiresAt,
        createdAt: clock.now(),
      },
    });
    await this.audit(tenantId, "step_up.requested", principal.actor, { action, heldChangeId: id, sentTo: maskPhone(tenant.adminNumber) });
    return view(row, tenant.adminNumber);
  }

  /** Applies a held change when the code is right. Wrong codes count against the verification's attempts. */
  async confirm(principal: Principal, id: string, code: string): Promise<{ stepUp: HeldView; status: number; body: Record<string, unknown> }> {
    const { prisma, keyring, verifications, clock } = this.deps;
    const row = await this.find(principal, id);
    const now = clock.now();
    if (row.status !== "pending") throw new StepUpError(409, "step_up_not_pending", `This change is ${row.status}`);
    if (row.expiresAt <= now) {
      await prisma.heldChange.updateMany({ where: { id, status: "pending" }, data: { status: "expired", resolvedAt: now } });
      throw new StepUpError(409, "step_up_not_pending", "This change expired: ask again");
    }
    const who = { tenantId: row.tenantId, actor: principal.actor };
    let check;
    try {
      check = await verifications.check(who, { id: row.verificationId!, code });
    } catch (err) {
      if (err instanceof OtpError && err.code === "verification_not_found") {
        await prisma.heldChange.updateMany({ where: { id, status: "pending" }, data: { status: "failed", resolvedAt: now } });
        throw new StepUpError(409, "step_up_not_pending", "The code for this change is no longer valid: ask again");
      }
      throw err;
    }
    if (!check.valid) {
      const left = check.verification.maxAttempts - check.verification.attempts;
      const ended = check.verification.status !== "pending";
      if (ended) await prisma.heldChange.updateMany({ where: { id, status: "pending" }, data: { status: "failed", resolvedAt: now } });
      await this.audit(row.tenantId, "step_up.wrong_code", principal.actor, { action: row.action, heldChangeId: id, attemptsLeft: Math.max(0, left) });
      throw new StepUpError(422, "invalid_code", ended ? "Wrong code; too many attempts: this change is refused" : "Wrong code", { attemptsLeft: Math.max(0, left) });
    }
    // the code was right: claim the change once (two confirms racing: one applies)
    const claimed = await prisma.heldChange.updateMany({ where: { id, status: "pending" }, data: { status: "applying" } });
    if (claimed.count !== 1) throw new StepUpError(409, "step_up_not_pending", "This change was already confirmed");
    const payload = JSON.parse(keyring.decryptString("held-change", row.payloadEnc)) as Record<string, unknown>;
    let result: ApplyResult;
    try {
      result = await this.applierOf(row.action as HeldAction)(row.tenantId, payload, `${row.requestedBy} (step-up)`);
    } catch (err) {
      await prisma.heldChange.update({ where: { id }, data: { status: "failed", resolvedAt: clock.now(), result: { error: err instanceof Error ? err.message : String(err) } } });
      throw err;
    }
    const done = await prisma.heldChange.update({
      where: { id },
      data: { status: "applied", resolvedAt: clock.now(), result: (result.stored ?? result.body) as Prisma.InputJsonValue },
    });
    await this.audit(row.tenantId, "step_up.confirmed", principal.actor, { action: row.action, heldChangeId: id });
    return { stepUp: view(done, undefined), status: result.status === 202 ? 200 : result.status, body: result.body };
  }

  async cancel(principal: Principal, id: string): Promise<HeldView> {
    const row = await this.find(principal, id);
    const moved = await this.deps.prisma.heldChange.updateMany({ where: { id, status: "pending" }, data: { status: "canceled", resolvedAt: this.deps.clock.now() } });
    if (moved.count !== 1) throw new StepUpError(409, "step_up_not_pending", `This change is ${row.status}`);
    if (row.verificationId) await this.deps.verifications.cancel({ tenantId: row.tenantId, actor: principal.actor }, row.verificationId).catch(() => undefined);
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
