import express, { Router, type Request } from "express";
import { z } from "zod";
import { recordAudit } from "../audit/audit";
import { transaction, type PrismaClient, type Tx } from "../db/prisma";
import { EventPublisher } from "../events/publisher";
import { eventNumber } from "../journeys/contacts.actions";
import { activeLogins, loginView, revokeLogins } from "../journeys/logins";
import type { Logger } from "../observability/logger";
import { OtpError } from "../otp/errors";
import { normalizeNumber } from "../otp/phone";
import type { Clock } from "../shared/clock";
import { requireScope } from "./auth";
import { ApiError } from "./errors";
import { parseInput } from "./validate";

const text = (max: number) => z.string().trim().min(1).max(max);
const loginBody = z.strictObject({
  id: text(200),
  device: text(200).optional(),
  location: text(200).optional(),
  at: z.iso.datetime({ offset: true }).optional(),
});
const reverifyBody = z.strictObject({ reason: z.string().regex(/^[a-zA-Z0-9_.:-]{1,100}$/, "letters, digits and _.:- (at most 100)").optional() });


/** The path's number in E.164 ("+14155550123"; a leading + may be left out). */
function phoneOf(req: Request): string {
  const raw = String(req.params.phone ?? "").trim();
  try {
    return normalizeNumber(/^\d/.test(raw) ? `+${raw}` : raw).e164;
  } catch (err) {
    if (err instanceof OtpError) throw new ApiError(400, err.code, err.message);
    throw err;
  }
}

type Db = Tx | PrismaClient;
const findContact = (db: Db, tenantId: string, phone: string) =>
  db.contact.findFirst({ where: { tenantId, OR: [{ phoneE164: phone }, { waId: phone.slice(1) }] }, orderBy: { createdAt: "asc" } });

/** The contact with this number, created when the business names a number that never wrote yet. */
async function contactFor(prisma: PrismaClient, tenantId: string, phone: string) {
  const found = await findContact(prisma, tenantId, phone);
  if (found) return found;
  try {
    return await prisma.contact.create({ data: { tenantId, waId: phone.slice(1), phoneE164: phone } });
  } catch (err) {
    if ((err as { code?: string }).code !== "P2002") throw err;
    const again = await findContact(prisma, tenantId, phone);
    if (!again) throw err;
    return again;
  }
}

export interface ContactsRoutesDeps {
  prisma: PrismaClient;
  eventPublisher: { dispatch(ids: Array<string | null>): Promise<void> };
  clock?: Clock;
  logger?: Logger;
  /** starts the re-verification journey after `POST /contacts/{phone}/reverify` (wired by the deployment) */
  startFlow?: (input: { tenantId: string; phoneE164: string; reason?: string }) => Promise<unknown>;
}

/**
 * The business's view of its customers (scope `verify`, its own tenant only):
 * - `GET /v1/contacts/{phone}`: verified state, re-verification required, name;
 * - `POST|GET /v1/contacts/{phone}/logins`, `DELETE /v1/contacts/{phone}/logins/{id}`: the logins (web sessions,
 *   devices) it reports, which the customer can list and end from the chat;
 * - `POST /v1/contacts/{phone}/reverify`: ask the customer to verify again;
 * - `GET|DELETE /v1/contacts/{phone}/block`: whether new codes to the number are blocked (the customer said "I didn't
 *   request this"), and lifting that block (e.g. once support has checked the owner in another way).
 */
export function contactsRoutes(deps: ContactsRoutesDeps) {
  const { prisma } = deps;
  const now = () => deps.clock?.now() ?? new Date();
  const dispatch = async (ids: Array<string | null>) => {
    try {
      await deps.eventPublisher.dispatch(ids);
    } catch (err) {
      deps.logger?.warn({ err: (err as Error).message }, "event dispatch failed; the sweep will retry");
    }
  };
  const v1 = Router();
  v1.use("/contacts", express.json({ limit: "16kb" }));

  v1.get("/contacts/:phone", requireScope("verify"), async (req, res) => {
    const phone = phoneOf(req);
    const c = await findContact(prisma, req.principal!.tenantId, phone);
    if (!c) throw new ApiError(404, "contact_not_found", "No contact with this number");
    const pin = await prisma.contactPin.findUnique({ where: { contactId: c.id }, select: { id: true } });
    res.json({
      to: c.phoneE164 ?? phone,
      verified: c.verifiedAt !== null,
      hasPin: pin !== null,
      verifiedAt: c.verifiedAt?.toISOString() ?? null,
      reverifyRequired: c.reverifyRequiredAt !== null,
      reverifyRequiredAt: c.reverifyRequiredAt?.toISOString() ?? null,
      name: c.profileName,
    });
  });

  v1.post("/contacts/:phone/logins", requireScope("verify"), async (req, res) => {
    const p = req.principal!;
    const phone = phoneOf(req);
    const body = parseInput(loginBody, req.body);
    const contact = await contactFor(prisma, p.tenantId, phone);
    const existing = await prisma.login.findUnique({ where: { tenantId_externalId: { tenantId: p.tenantId, externalId: body.id } } });
    if (existing) {
      if (existing.contactId !== contact.id) throw new ApiError(409, "login_exists", "A login with this id exists for another number");
      res.status(200).json({ to: phone, ...loginView(existing) });
      return;
    }
    try {
      const row = await prisma.login.create({
        data: { tenantId: p.tenantId, contactId: contact.id, externalId: body.id, device: body.device ?? null, location: body.location ?? null, createdAt: body.at ? new Date(body.at) : now() },
      });
      res.status(201).json({ to: phone, ...loginView(row) });
    } catch (err) {
      if ((err as { code?: string }).code !== "P2002") throw err;
      // the same id created concurrently: answer like a repeat
      const again = await prisma.login.findUniqueOrThrow({ where: { tenantId_externalId: { tenantId: p.tenantId, externalId: body.id } } });
      if (again.contactId !== contact.id) throw new ApiError(409, "login_exists", "A login with this id exists for another number");
      res.status(200).json({ to: phone, ...loginView(again) });
    }
  });

  v1.get("/contacts/:phone/logins", requireScope("verify"), async (req, res) => {
    const p = req.principal!;
    const phone = phoneOf(req);
    const c = await findContact(prisma, p.tenantId, phone);
    if (!c) throw new ApiError(404, "contact_not_found", "No contact with this number");
    const rows = await activeLogins(prisma, p.tenantId, c.id, 500);
    res.json({ to: phone, logins: rows.map(loginView) });
  });

  v1.delete("/contacts/:phone/logins/:id", requireScope("verify"), async (req, res) => {
    const p = req.principal!;
    const phone = phoneOf(req);
    const externalId = String(req.params.id ?? "");
    const c = await findContact(prisma, p.tenantId, phone);
    const login = c ? await prisma.login.findUnique({ where: { tenantId_externalId: { tenantId: p.tenantId, externalId } } }) : null;
    if (!c || !login || login.contactId !== c.id) throw new ApiError(404, "login_not_found", "No login with this id for this number");
    const at = now();
    const eventId = await transaction(prisma, async (tx) => {
      const ids = await revokeLogins(tx, { tenantId: p.tenantId, contactId: c.id, externalId, by: p.actor, now: at });
      if (ids.length === 0) return null; // revoked already: nothing new to tell
      await recordAudit(tx, { tenantId: p.tenantId, type: "login.revoked", actor: p.actor, subject: phone, data: { contactId: c.id, count: 1 }, at });
      return EventPublisher.publish(tx, {
        tenantId: p.tenantId,
        type: "login.revoked",
        data: { contactId: c.id, to: eventNumber(phone), count: 1, loginIds: ids, reason: "api" },
        now: at,
      });
    });
    await dispatch([eventId]);
    const row = await prisma.login.findUniqueOrThrow({ where: { id: login.id } });
    res.json({ to: phone, ...loginView(row), revoked: true });
  });

  /** The block of new codes to a number (by number: it may have no contact yet); an expired one reads as none. */
  const blockView = (phone: string, b: { until: Date; reason: string; createdAt: Date } | null, at: Date) =>
    b && b.until > at
      ? { to: phone, blocked: true, until: b.until.toISOString(), reason: b.reason, since: b.createdAt.toISOString() }
      : { to: phone, blocked: false, until: null, reason: null, since: null };

  v1.get("/contacts/:phone/block", requireScope("verify"), async (req, res) => {
    const p = req.principal!;
    const phone = phoneOf(req);
    const b = await prisma.numberBlock.findUnique({ where: { tenantId_phone: { tenantId: p.tenantId, phone } } });
    res.json(blockView(phone, b, now()));
  });

  v1.delete("/contacts/:phone/block", requireScope("verify"), async (req, res) => {
    const p = req.principal!;
    const phone = phoneOf(req);
    const at = now();
    const lifted = await transaction(prisma, async (tx) => {
      const rows = await tx.$queryRaw<{ until: Date; reason: string }[]>`
        DELETE FROM number_blocks WHERE tenant_id = ${p.tenantId}::uuid AND phone = ${phone} RETURNING until, reason`;
      const live = rows.filter((r) => r.until > at);
      if (live.length > 0) {
        await recordAudit(tx, { tenantId: p.tenantId, type: "number.block_lifted", actor: p.actor, subject: phone, data: { until: live[0]!.until.toISOString(), reason: live[0]!.reason }, at });
      }
      return live.length > 0;
    });
    deps.logger?.info({ tenantId: p.tenantId, lifted }, "number block lifted through the API");
    res.json({ ...blockView(phone, null, at), lifted });
  });

  v1.post("/contacts/:phone/reverify", requireScope("verify"), async (req, res) => {
    const p = req.principal!;
    const phone = phoneOf(req);
    const { reason } = parseInput(reverifyBody, req.body);
    const contact = await contactFor(prisma, p.tenantId, phone);
    const at = now();
    const eventId = await transaction(prisma, async (tx) => {
      await tx.contact.update({ where: { id: contact.id }, data: { reverifyRequiredAt: at } });
      await recordAudit(tx, { tenantId: p.tenantId, type: "contact.reverify_requested", actor: p.actor, subject: phone, data: { contactId: contact.id, ...(reason ? { reason } : {}) }, at });
      return EventPublisher.publish(tx, {
        tenantId: p.tenantId,
        type: "reverification.requested",
        data: { contactId: contact.id, to: eventNumber(phone), requestedAt: at.toISOString(), ...(reason ? { reason } : {}) },
        now: at,
      });
    });
    await dispatch([eventId]);
    let flowStarted = false;
    if (deps.startFlow) {
      try {
        await deps.startFlow({ tenantId: p.tenantId, phoneE164: phone, reason });
        flowStarted = true;
      } catch (err) {
        deps.logger?.warn({ err: (err as Error).message }, "re-verification flow not started");
      }
    }
    res.status(202).json({ to: phone, reverifyRequired: true, reverifyRequiredAt: at.toISOString(), flowStarted });
  });

  return { v1 };
}
