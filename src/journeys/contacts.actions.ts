import { recordAudit } from "../audit/audit";
import { transaction, type PrismaClient, type Tx } from "../db/prisma";
import { EventPublisher } from "../events/publisher";
import type { ActionContext, ActionExecutor, ActionResult } from "../flows/flow.handler";
import { maskPhone, type Logger } from "../observability/logger";
import { OtpError } from "../otp/errors";
import { normalizeNumber } from "../otp/phone";
import { pinProof } from "../pin/pin.service";
import type { BackgroundTasks } from "../shared/background";
import { actionActor, type ActionRegistry } from "./actions";
import { activeLogins, loginsText, revokeLogins } from "./logins";

/**
 * The contact journeys' actions (src/flows/schema.ts ACTIONS): the verified / re-verify state, the logins the
 * business reported, a number change, and telling the business about unauthorized access. Each does its work in
 * its own transaction and publishes the matching business event (src/events/types.ts), dispatched after commit.
 *
 * Writes to the contact's own row: an action runs while the inbound message's transaction holds that row (the
 * inbound claim updates it), or even before the row is committed (a new contact). Such a write is tried at once
 * with NOWAIT; when the row is busy or not visible yet it is applied right after the message commits (retried in
 * the background, in order), so the chat never waits on itself. Checks that decide the action's answer (a number
 * already taken) are made before answering.
 *
 * Actions that change who controls the account (`change_number`, `revoke_logins`) refuse with `pin_required` when
 * the contact has a PIN that was not proven in the last PIN_PROOF_MINUTES: a flow must ask for it first
 * (`pin_verify`), so codes alone (a SIM swap) never move an account that has a PIN.
 */
export interface ContactActionDeps {
  prisma: PrismaClient;
  eventPublisher: { dispatch(ids: Array<string | null>): Promise<void> };
  logger: Logger;
  /** for `report_unauthorized`: cancels the number's pending codes and blocks new ones for a while */
  verifications?: { report(who: { tenantId: string; actor: string }, phoneE164: string, source: string): Promise<{ canceled: number; blockedUntil: Date }> };
  /** how long a deferred contact write keeps trying (default 30 s) */
  deferredWriteTimeoutMs?: number;
  /** deferred writes are tracked here, so a shutdown waits for them (src/shared/background.ts) */
  background?: BackgroundTasks;
}

/** `notify_business` events a flow may send, by `params.event`. */
export const NOTIFY_EVENTS = ["unauthorized_access", "reverification_needed"] as const;

const E164 = /^\+[1-9]\d{6,14}$/;
/** The number for an event's `to`, when the contact has a well-formed one. */
export function eventNumber(phone: string | null | undefined): string | undefined {
  return phone && E164.test(phone) ? phone : undefined;
}

const reasonOf = (v: unknown, fallback: string) => (typeof v === "string" && /^[a-z0-9_.:-]{1,100}$/i.test(v) ? v : fallback);

type ContactFull = NonNullable<Awaited<ReturnType<Tx["contact"]["findUnique"]>>>;

class RowBusy extends Error {}
class NumberInUse extends Error {}

function isLockError(err: unknown): boolean {
  if (err instanceof RowBusy) return true;
  const e = err as { code?: string; meta?: unknown; message?: string; cause?: unknown };
  const text = `${e?.code ?? ""} ${e?.message ?? ""} ${safeJson(e?.meta)} ${safeJson(e?.cause)}`;
  return /55P03|could not obtain lock|lock timeout|canceling statement due to lock/i.test(text);
}
function safeJson(v: unknown): string {
  try {
    return v === undefined ? "" : JSON.stringify(v);
  } catch {
    return "";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createContactActions(deps: ContactActionDeps): ActionRegistry {
  const { prisma, logger } = deps;
  const actorOf = (ctx: ActionContext) => actionActor(ctx, `flow:${ctx.flow}`);
  const dispatch = async (ids: Array<string | null>) => {
    try {
      await deps.eventPublisher.dispatch(ids);
    } catch (err) {
      // the rows are stored: the publisher's sweep re-dispatches them
      logger.warn({ err: (err as Error).message }, "event dispatch failed; the sweep will retry");
    }
  };

  /** per contact, deferred writes run one after another, in the order the actions asked for them */
  const queues = new Map<string, Promise<void>>();

  /**
   * Runs `work` in a transaction holding the contact's row. Returns "done", or "deferred" when the row is held
   * by the message being handled (or not committed yet): the write then runs as soon as it can.
   */
  async function writeContact(ctx: ActionContext, label: string, work: (tx: Tx, contact: ContactFull) => Promise<Array<string | null>>): Promise<"done" | "deferred"> {
    const attempt = (wait: boolean) =>
      transaction(prisma, async (tx) => {
        if (wait) await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = '5s'`);
        const rows = wait
          ? await tx.$queryRaw<{ id: string }[]>`SELECT id::text AS id FROM contacts WHERE id = ${ctx.contact.id}::uuid AND tenant_id = ${ctx.tenant.id}::uuid FOR UPDATE`
          : await tx.$queryRaw<{ id: string }[]>`SELECT id::text AS id FROM contacts WHERE id = ${ctx.contact.id}::uuid AND tenant_id = ${ctx.tenant.id}::uuid FOR UPDATE NOWAIT`;
        if (rows.length === 0) throw new RowBusy("contact not visible yet");
        const contact = await tx.contact.findUniqueOrThrow({ where: { id: ctx.contact.id } });
        return work(tx, contact);
      });
    const pending = queues.get(ctx.contact.id);
    if (!pending) {
      try {
        await dispatch(await attempt(false));
        return "done";
      } catch (err) {
        if (!isLockError(err)) throw err;
      }
    }
    logger.debug({ action: label, contactId: ctx.contact.id }, "contact write deferred until the message commits");
    const until = Date.now() + (deps.deferredWriteTimeoutMs ?? 30_000);
    const run = async () => {
      for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
        try {
          await dispatch(await attempt(true));
          return;
        } catch (err) {
          if (!isLockError(err)) {
            logger.error({ err: (err as Error).message, action: label, contactId: ctx.contact.id }, "deferred contact update failed");
            return;
          }
          if (Date.now() > until) {
            logger.error({ action: label, contactId: ctx.contact.id }, "deferred contact update gave up: the contact stayed locked or missing");
            return;
          }
          await sleep(delay);
        }
      }
    };
    const next = (pending ?? Promise.resolve()).then(run);
    deps.background?.track(next);
    queues.set(ctx.contact.id, next);
    void next.finally(() => {
      if (queues.get(ctx.contact.id) === next) queues.delete(ctx.contact.id);
    });
    return "deferred";
  }

  const markVerified: ActionExecutor = async (ctx) => {
    await writeContact(ctx, "mark_verified", async (tx, c) => {
      await tx.contact.update({ where: { id: c.id }, data: { verifiedAt: ctx.now, reverifyRequiredAt: null } });
      await recordAudit(tx, { tenantId: ctx.tenant.id, type: "contact.verified", actor: actorOf(ctx), subject: c.phoneE164 ?? c.id, data: { contactId: c.id, step: ctx.step }, at: ctx.now });
      return [
        await EventPublisher.publish(tx, {
          tenantId: ctx.tenant.id,
          type: "contact.verified",
          data: { contactId: c.id, to: eventNumber(c.phoneE164), verifiedAt: ctx.now.toISOString(), source: `flow:${ctx.flow}`.slice(0, 100) },
          now: ctx.now,
        }),
      ];
    });
    return { ok: true, data: { verified: true, verifiedAt: ctx.now.toISOString() } };
  };

  const clearVerified: ActionExecutor = async (ctx) => {
    await writeContact(ctx, "clear_verified", async (tx, c) => {
      await tx.contact.update({ where: { id: c.id }, data: { verifiedAt: null } });
      await recordAudit(tx, { tenantId: ctx.tenant.id, type: "contact.verified_cleared", actor: actorOf(ctx), subject: c.phoneE164 ?? c.id, data: { contactId: c.id }, at: ctx.now });
      return [];
    });
    return { ok: true, data: { verified: false } };
  };

  const clearReverify: ActionExecutor = async (ctx) => {
    await writeContact(ctx, "clear_reverify", async (tx, c) => {
      await tx.contact.update({ where: { id: c.id }, data: { reverifyRequiredAt: null } });
      await recordAudit(tx, { tenantId: ctx.tenant.id, type: "contact.reverify_cleared", actor: actorOf(ctx), subject: c.phoneE164 ?? c.id, data: { contactId: c.id }, at: ctx.now });
      return [];
    });
    return { ok: true, data: { reverifyRequired: false } };
  };

  const listLogins: ActionExecutor = async (ctx) => {
    const rows = await activeLogins(prisma, ctx.tenant.id, ctx.contact.id);
    return { ok: true, data: { count: rows.length, text: loginsText(rows, ctx.locale, ctx.now) } };
  };

  const revoke = async (ctx: ActionContext, externalId: string | undefined): Promise<ActionResult> => {
    const { ids, eventId } = await transaction(prisma, async (tx) => {
      const ids = await revokeLogins(tx, { tenantId: ctx.tenant.id, contactId: ctx.contact.id, externalId, by: `customer:${ctx.contact.id}`, now: ctx.now });
      if (ids.length === 0) return { ids, eventId: null };
      await recordAudit(tx, { tenantId: ctx.tenant.id, type: "login.revoked", actor: actorOf(ctx), subject: ctx.contact.phoneE164 ?? ctx.contact.id, data: { contactId: ctx.contact.id, count: ids.length }, at: ctx.now });
      const eventId = await EventPublisher.publish(tx, {
        tenantId: ctx.tenant.id,
        type: "login.revoked",
        data: { contactId: ctx.contact.id, to: eventNumber(ctx.contact.phoneE164), count: ids.length, loginIds: ids.slice(0, 100), reason: "customer_request" },
        now: ctx.now,
      });
      return { ids, eventId };
    });
    await dispatch([eventId]);
    return { ok: true, data: { count: ids.length } };
  };

  /** The PIN gate: null to go ahead, or the error answer. */
  const pinGate = async (ctx: ActionContext): Promise<ActionResult | null> => {
    const proof = await pinProof(prisma, ctx.contact.id, ctx.now);
    if (proof === false) {
      logger.warn({ tenantId: ctx.tenant.id, contactId: ctx.contact.id, flow: ctx.flow, step: ctx.step }, "account change refused: the PIN was not proven");
      return { ok: false, error: "pin_required" };
    }
    return null;
  };

  const revokeAll: ActionExecutor = async (ctx) => (await pinGate(ctx)) ?? revoke(ctx, undefined);
  const revokeOne: ActionExecutor = async (ctx, params) => {
    const id = params.id;
    if ((typeof id !== "string" && typeof id !== "number") || String(id).trim() === "") return { ok: false, error: "missing_id" };
    const r = await revoke(ctx, String(id).trim());
    if (r.ok && r.data?.count === 0) return { ok: false, error: "login_not_found" };
    return r;
  };

  /** A contact that never wrote, was never verified and has no user id: made only to send it a code. */
  const PLACEHOLDER_FIELDS = { id: true, lastInboundAt: true, verifiedAt: true, userId: true } as const;
  const isPlaceholder = (c: { lastInboundAt: Date | null; verifiedAt: Date | null; userId: string | null }) =>
    c.lastInboundAt === null && c.verifiedAt === null && c.userId === null;

  const changeNumber: ActionExecutor = async (ctx, params) => {
    const raw = params.new_number;
    if (typeof raw !== "string" || raw.trim() === "") return { ok: false, error: "missing_new_number" };
    let to: string;
    try {
      to = normalizeNumber(raw).e164;
    } catch (err) {
      if (err instanceof OtpError) return { ok: false, error: err.code };
      throw err;
    }
    const waId = to.slice(1);
    if (ctx.contact.phoneE164 === to && ctx.contact.waId === waId) return { ok: true, data: { changed: false, to } };
    const refused = await pinGate(ctx);
    if (refused) return refused;
    const taken = await prisma.contact.findFirst({ where: { tenantId: ctx.tenant.id, id: { not: ctx.contact.id }, OR: [{ waId }, { phoneE164: to }] }, select: PLACEHOLDER_FIELDS });
    if (taken && !isPlaceholder(taken)) return { ok: false, error: "number_in_use" };
    const from = ctx.contact.phoneE164;
    const write = writeContact(ctx, "change_number", async (tx, c) => {
      const again = await tx.contact.findFirst({ where: { tenantId: ctx.tenant.id, id: { not: c.id }, OR: [{ waId }, { phoneE164: to }] }, select: PLACEHOLDER_FIELDS });
      if (again && !isPlaceholder(again)) throw new NumberInUse("number_in_use: another contact took the number meanwhile");
      if (again) {
        // the new number's record exists only because its confirmation code was sent to it: fold it into this contact
        await tx.message.updateMany({ where: { contactId: again.id }, data: { contactId: c.id } });
        await tx.verification.updateMany({ where: { contactId: again.id }, data: { contactId: c.id } });
        await tx.session.deleteMany({ where: { contactId: again.id } });
        await tx.contact.delete({ where: { id: again.id } });
      }
      await tx.contact.update({ where: { id: c.id }, data: { waId, phoneE164: to, verifiedAt: null } });
      await recordAudit(tx, { tenantId: ctx.tenant.id, type: "contact.number_changed", actor: actorOf(ctx), subject: c.id, data: { from: maskPhone(c.phoneE164) ?? null, to: maskPhone(to) ?? null }, at: ctx.now });
      return [
        await EventPublisher.publish(tx, {
          tenantId: ctx.tenant.id,
          type: "contact.number_changed",
          data: { contactId: c.id, from: eventNumber(c.phoneE164), to, reason: "customer_request", reverifyRequired: false },
          now: ctx.now,
        }),
      ];
    });
    try {
      await write;
    } catch (err) {
      if (err instanceof NumberInUse || (err as { code?: string }).code === "P2002") return { ok: false, error: "number_in_use" };
      throw err;
    }
    return { ok: true, data: { changed: true, from, to } };
  };

  async function publishUnauthorized(ctx: ActionContext, extra: { canceled?: number; blockedUntil?: Date; reason: string }): Promise<void> {
    const id = await transaction(prisma, async (tx) => {
      await recordAudit(tx, {
        tenantId: ctx.tenant.id,
        type: "contact.unauthorized_access_reported",
        actor: actionActor(ctx, `customer:${ctx.contact.id}`),
        subject: ctx.contact.phoneE164 ?? ctx.contact.id,
        data: { contactId: ctx.contact.id, flow: ctx.flow, reason: extra.reason, ...(extra.canceled !== undefined ? { canceled: extra.canceled } : {}) },
        at: ctx.now,
      });
      return EventPublisher.publish(tx, {
        tenantId: ctx.tenant.id,
        type: "unauthorized_access.reported",
        data: {
          contactId: ctx.contact.id,
          to: eventNumber(ctx.contact.phoneE164),
          canceled: extra.canceled,
          blockedUntil: extra.blockedUntil?.toISOString(),
          reason: extra.reason,
        },
        now: ctx.now,
      });
    });
    await dispatch([id]);
  }

  const notifyBusiness: ActionExecutor = async (ctx, params) => {
    const event = params.event;
    if (!(NOTIFY_EVENTS as readonly unknown[]).includes(event)) return { ok: false, error: "unknown_event" };
    if (event === "unauthorized_access") {
      await publishUnauthorized(ctx, { reason: reasonOf(params.reason, "customer_report") });
      return { ok: true, data: { notified: event } };
    }
    // reverification_needed: the contact must verify again; the business hears about it
    const reason = reasonOf(params.reason, "customer_request");
    await writeContact(ctx, "notify_business", async (tx, c) => {
      await tx.contact.update({ where: { id: c.id }, data: { reverifyRequiredAt: ctx.now } });
      return [
        await EventPublisher.publish(tx, {
          tenantId: ctx.tenant.id,
          type: "reverification.requested",
          data: { contactId: c.id, to: eventNumber(c.phoneE164), requestedAt: ctx.now.toISOString(), reason },
          now: ctx.now,
        }),
      ];
    });
    return { ok: true, data: { notified: event } };
  };

  const reportUnauthorized: ActionExecutor = async (ctx, params) => {
    const reason = reasonOf(params.reason, "unauthorized_access");
    let canceled: number | undefined;
    let blockedUntil: Date | undefined;
    const phone = eventNumber(ctx.contact.phoneE164);
    if (deps.verifications && phone) {
      const r = await deps.verifications.report({ tenantId: ctx.tenant.id, actor: `chat:${ctx.contact.id}` }, phone, "unauthorized_access");
      canceled = r.canceled;
      blockedUntil = r.blockedUntil;
    }
    await publishUnauthorized(ctx, { canceled, blockedUntil, reason });
    return { ok: true, data: { reported: true, canceled: canceled ?? 0 } };
  };

  return {
    mark_verified: markVerified,
    clear_verified: clearVerified,
    clear_reverify: clearReverify,
    list_logins: listLogins,
    revoke_logins: revokeAll,
    revoke_login: revokeOne,
    change_number: changeNumber,
    notify_business: notifyBusiness,
    report_unauthorized: reportUnauthorized,
  };
}
