import { transaction, type PrismaClient } from "../db/prisma";
import { prismaLocks, prismaQueryable } from "../db/sql";
import type { FlowHandler } from "../flows/flow.handler";
import type { FlowStore } from "../flows/flow-store";
import { Outbox } from "../messaging/outbox";
import type { Clock } from "../shared/clock";
import type { TenantRecord } from "../tenants/tenant-directory";
import { contactLockKey, saveSession } from "./inbound-handler";
import type { SessionState } from "./router";

export type StartFlowOutcome =
  | { kind: "started"; flow: string; version: number; contactId: string; messages: number; waiting: boolean; outbound: string[]; afterCommit?: () => Promise<void> }
  | { kind: "flow_not_found" }
  | { kind: "handed_off" };

/**
 * Starts a flow for a number from the business's backend (the `api` trigger), with variables: the contact is
 * locked like an inbound message, its session replaced by the new flow, the first messages written to the outbox.
 * Outside the 24-hour window only templates go out (free-text steps use their template or are skipped).
 */
export async function startFlowFor(
  deps: { prisma: PrismaClient; flows: FlowStore; flowHandler: FlowHandler; outbox: Outbox; clock: Clock },
  tenant: TenantRecord,
  input: { phoneE164: string; flow: string; variables: Record<string, unknown>; /** who started it (audited with what the flow does) */ startedBy: string },
): Promise<StartFlowOutcome> {
  const live = (await deps.flows.liveDefinitions(tenant.id)).find((f) => f.name === input.flow);
  if (!live) return { kind: "flow_not_found" };
  const waId = input.phoneE164.replace(/^\+/, "");
  // a new contact is created (committed) first: a step that works in its own transaction — a code request plans its
  // message for this contact — must find it, not wait on this transaction's uncommitted row until it times out
  const known = { tenantId: tenant.id, OR: [{ waId }, { phoneE164: input.phoneE164 }] };
  if (!(await deps.prisma.contact.findFirst({ where: known, select: { id: true } }))) {
    await deps.prisma.contact.upsert({ where: { tenantId_waId: { tenantId: tenant.id, waId } }, create: { tenantId: tenant.id, waId, phoneE164: input.phoneE164 }, update: {} });
  }
  const outcome = await transaction(deps.prisma, async (tx): Promise<StartFlowOutcome> => {
    await prismaLocks(tx, { lockKey: contactLockKey(tenant.phoneNumberId, waId) });
    const now = deps.clock.now();
    const contact =
      (await tx.contact.findFirst({ where: known })) ??
      (await tx.contact.create({ data: { tenantId: tenant.id, waId, phoneE164: input.phoneE164 } }));
    const row = (await tx.session.findUnique({ where: { contactId: contact.id } })) ?? (await tx.session.create({ data: { tenantId: tenant.id, contactId: contact.id } }));
    if (row.handoffAt) return { kind: "handed_off" };
    const session: SessionState = {
      id: row.id,
      flow: row.flow,
      flowVersion: row.flowVersion,
      step: row.step,
      variables: (row.variables ?? {}) as Record<string, unknown>,
      state: (row.state ?? {}) as Record<string, unknown>,
      expiresAt: row.expiresAt,
      handoffAt: row.handoffAt,
      version: row.version,
    };
    const ctx = { tx, tenant, contact, isNewContact: false, message: { id: "api-start", type: "api" }, session, now };
    const result = await deps.flowHandler.startFor(ctx, live.definition, live.version, input.variables, input.startedBy);
    await saveSession(prismaQueryable(tx), session, result.session ?? {});
    const outbound = await Outbox.create(tx, { tenantId: tenant.id, contactId: contact.id, contents: result.replies, now });
    return { kind: "started", flow: live.name, version: live.version, contactId: contact.id, messages: outbound.length, waiting: Boolean(result.session?.step), outbound, afterCommit: result.afterCommit };
  });
  if (outcome.kind === "started") {
    await deps.outbox.dispatch(outcome.outbound);
    // an http step reached: its call's job (src/flows/flow-call.ts)
    await outcome.afterCommit?.();
    const { afterCommit: _done, ...rest } = outcome;
    return rest;
  }
  return outcome;
}
