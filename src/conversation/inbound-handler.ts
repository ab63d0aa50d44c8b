import { createHash } from "node:crypto";
import { Prisma, transaction, type PrismaClient, type Tx } from "../db/prisma";
import type { InboundItem } from "../ingest/envelope";
import { Outbox } from "../messaging/outbox";
import { maskPhone, type Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import type { TenantDirectory } from "../tenants/tenant-directory";
import { upsertContact } from "./contacts";
import type { Router, SessionState } from "./router";

export type HandleOutcome =
  | { kind: "handled"; outbound: string[]; handler: string | null; afterCommit?: () => Promise<void> }
  | { kind: "duplicate" }
  | { kind: "unknown_tenant" };

export class SessionConflictError extends Error {
  constructor() {
    super("session was changed by another writer");
  }
}

/** A signed 64-bit advisory-lock key for one contact of one business number. */
export function contactLockKey(phoneNumberId: string, contactKey: string): bigint {
  return createHash("sha256").update(`${phoneNumberId}\u0000${contactKey}`).digest().readBigInt64BE(0);
}

/**
 * Handles one inbound message in one transaction: lock the contact (so two workers or processes never interleave
 * its messages), claim the wamid (the lasting dedupe gate), route, write replies to the outbox and save the
 * session. Replies are dispatched to the outbound queue after commit.
 */
export class InboundHandler {
  constructor(
    private readonly deps: { prisma: PrismaClient; tenants: TenantDirectory; router: Router; outbox: Outbox; clock: Clock; logger: Logger },
  ) {}

  async handle(item: InboundItem): Promise<HandleOutcome> {
    const { prisma, tenants, router, outbox, clock, logger } = this.deps;
    const tenant = await tenants.byPhoneNumberId(item.phoneNumberId);
    if (!tenant) {
      logger.warn({ phoneNumberId: item.phoneNumberId, wamid: item.message.id }, "message for an unknown business number dropped");
      return { kind: "unknown_tenant" };
    }
    const outcome = await transaction(prisma, async (tx): Promise<HandleOutcome> => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${contactLockKey(item.phoneNumberId, item.contactKey)})`;
      const now = clock.now();
      const sentAt = item.message.timestamp ? new Date(Number(item.message.timestamp) * 1000) : new Date(item.receivedAt);
      const { contact, created } = await upsertContact(tx, tenant.id, item, sentAt);

      const claimed = await tx.message.createMany({
        data: [
          {
            tenantId: tenant.id,
            contactId: contact.id,
            direction: "inbound",
            wamid: item.message.id,
            type: item.message.type,
            payload: item.message as Prisma.InputJsonValue,
            status: "received",
            timestamp: sentAt,
          },
        ],
        skipDuplicates: true,
      });
      if (claimed.count === 0) return { kind: "duplicate" };

      const session = await loadSession(tx, tenant.id, contact.id);
      const result = await router.route({ tx, tenant, contact, isNewContact: created, message: item.message, session, now });
      if (result.session) await saveSession(tx, session, result.session);
      if (result.redactInbound) {
        // the clear text never commits: the row was inserted in this same transaction
        await tx.message.updateMany({
          where: { tenantId: tenant.id, wamid: item.message.id },
          data: { payload: redactPayload(item.message) as Prisma.InputJsonValue },
        });
      }
      const outbound = await Outbox.create(tx, { tenantId: tenant.id, contactId: contact.id, contents: result.replies, now });
      return { kind: "handled", outbound, handler: result.handler, afterCommit: result.afterCommit };
    });

    if (outcome.kind === "handled") {
      await outbox.dispatch(outcome.outbound);
      await outcome.afterCommit?.();
      logger.debug({ wamid: item.message.id, from: maskPhone(item.contactKey), handler: outcome.handler, replies: outcome.outbound.length }, "message handled");
    } else if (outcome.kind === "duplicate") {
      logger.info({ wamid: item.message.id }, "redelivered message ignored");
    }
    return outcome;
  }
}

async function loadSession(tx: Tx, tenantId: string, contactId: string): Promise<SessionState> {
  const row =
    (await tx.session.findUnique({ where: { contactId } })) ?? (await tx.session.create({ data: { tenantId, contactId } }));
  return {
    id: row.id,
    flow: row.flow,
    flowVersion: row.flowVersion,
    step: row.step,
    variables: (row.variables ?? {}) as Record<string, unknown>,
    expiresAt: row.expiresAt,
    version: row.version,
  };
}

/** Optimistic lock: the update applies only if nobody saved the session since it was read. */
async function saveSession(tx: Tx, before: SessionState, change: NonNullable<import("./router").RouteResult["session"]>): Promise<void> {
  const res = await tx.session.updateMany({
    where: { id: before.id, version: before.version },
    data: {
      flow: change.flow === undefined ? undefined : change.flow,
      flowVersion: change.flowVersion === undefined ? undefined : change.flowVersion,
      step: change.step === undefined ? undefined : change.step,
      variables: change.variables === undefined ? undefined : (change.variables as Prisma.InputJsonValue),
      expiresAt: change.expiresAt === undefined ? undefined : change.expiresAt,
      version: { increment: 1 },
    },
  });
  if (res.count === 0) throw new SessionConflictError();
}

/** The stored form of a message that carried a secret: its text replaced, everything else kept. */
export function redactPayload(message: InboundItem["message"]): Record<string, unknown> {
  const copy = { ...(message as Record<string, unknown>) };
  if (copy.text && typeof copy.text === "object") copy.text = { ...(copy.text as object), body: "[redacted]" };
  copy.redacted = true;
  return copy;
}
