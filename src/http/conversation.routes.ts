import express, { Router } from "express";
import { z } from "zod";
import { recordAudit } from "../audit/audit";
import { startFlowFor } from "../conversation/start-flow";
import type { PrismaClient } from "../db/prisma";
import type { FlowHandler } from "../flows/flow.handler";
import type { FlowStore } from "../flows/flow-store";
import type { Outbox } from "../messaging/outbox";
import { OtpError } from "../otp/errors";
import { normalizeNumber } from "../otp/phone";
import type { Clock } from "../shared/clock";
import type { TenantDirectory } from "../tenants/tenant-directory";
import { requireScope } from "./auth";
import { ApiError } from "./errors";
import { parseInput } from "./validate";

const startBody = z.strictObject({
  to: z.string().min(1).max(40),
  variables: z.record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/), z.union([z.string().max(4096), z.number(), z.boolean(), z.null()])).default({}),
});
const toBody = z.strictObject({ to: z.string().min(1).max(40) });


function e164(to: string): string {
  try {
    return normalizeNumber(to).e164;
  } catch (err) {
    if (err instanceof OtpError) throw new ApiError(400, err.code, err.message);
    throw err;
  }
}

/**
 * Conversations driven by the business: start a flow for a number (`api` trigger), and hand a chat back to the
 * bot after a person took it over (`handoff` step).
 */
export function conversationRoutes(deps: { prisma: PrismaClient; flows: FlowStore; flowHandler: FlowHandler; outbox: Outbox; clock: Clock; tenants: TenantDirectory }) {
  // body parsers per route: these routers share their mount paths with others, whose bodies they must not take
  const json = express.json({ limit: "64kb" });
  const v1 = Router();
  v1.post("/flows/:name/start", json, requireScope("verify"), async (req, res) => {
    const p = req.principal!;
    const body = parseInput(startBody, req.body);
    const tenant = await deps.prisma.tenant.findUniqueOrThrow({ where: { id: p.tenantId } });
    const outcome = await startFlowFor(deps, { ...tenant, settings: (tenant.settings ?? {}) as Record<string, unknown> }, {
      phoneE164: e164(body.to),
      flow: req.params.name as string,
      variables: body.variables,
      startedBy: p.actor,
    });
    if (outcome.kind === "flow_not_found") throw new ApiError(404, "flow_not_found", "No live flow with this name");
    if (outcome.kind === "handed_off") throw new ApiError(409, "handed_off", "A person has this conversation: release it first");
    await recordAudit(deps.prisma, { tenantId: p.tenantId, type: "flow.started", actor: p.actor, subject: body.to, data: { flow: outcome.flow, version: outcome.version } });
    res.status(202).json({ flow: outcome.flow, version: outcome.version, to: e164(body.to), messages: outcome.messages, waiting: outcome.waiting });
  });

  const admin = Router();
  admin.get("/handoffs", requireScope("read"), async (req, res) => {
    const rows = await deps.prisma.session.findMany({
      where: { tenantId: req.principal!.tenantId, handoffAt: { not: null } },
      include: { contact: { select: { phoneE164: true, userId: true, profileName: true } } },
      orderBy: { handoffAt: "asc" },
      take: 500,
    });
    res.json({ handoffs: rows.map((s) => ({ to: s.contact.phoneE164, userId: s.contact.userId, name: s.contact.profileName, flow: s.flow, since: s.handoffAt })) });
  });
  admin.post("/handoffs/release", json, requireScope("admin"), async (req, res) => {
    const p = req.principal!;
    const { to } = parseInput(toBody, req.body);
    const phone = e164(to);
    const res1 = await deps.prisma.session.updateMany({
      where: { tenantId: p.tenantId, handoffAt: { not: null }, contact: { phoneE164: phone } },
      data: { handoffAt: null, flow: null, flowVersion: null, step: null, state: {}, variables: {}, version: { increment: 1 } },
    });
    if (res1.count === 0) throw new ApiError(404, "not_handed_off", "This number's conversation is not with a person");
    await recordAudit(deps.prisma, { tenantId: p.tenantId, type: "handoff.released", actor: p.actor, subject: to });
    res.json({ to: phone, released: true });
  });
  return { v1, admin };
}
