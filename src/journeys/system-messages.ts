import { recordAudit } from "../audit/audit";
import type { Prisma } from "../db/prisma";
import { EventPublisher } from "../events/publisher";
import type { MessageHandler, RouteContext, RouteResult } from "../conversation/router";
import { maskPhone, type Logger } from "../observability/logger";
import { eventNumber } from "./contacts.actions";

/**
 * Meta's `system` messages about the customer's identity:
 * - `user_changed_number` (`system.wa_id`, or `new_wa_id` in newer webhook versions; the message's `from` is the
 *   old number): the contact moves to the new number;
 * - `user_changed_user_id` (`system.user_id`): the contact's business-scoped user id changes;
 * - `customer_identity_changed` (a reinstall or a new phone): nothing moves.
 * In every case the contact is no longer verified (a changed number can be a takeover), a fresh verification is
 * required (`reverifyRequiredAt`), a running flow ends, and the business hears `contact.number_changed`.
 * Nothing is answered: the result `{replies: []}` keeps later handlers quiet. Register it ahead of the flows.
 */
export const SYSTEM_KINDS = ["user_changed_number", "user_changed_user_id", "customer_identity_changed"] as const;

export interface SystemMessageDeps {
  eventPublisher: { dispatch(ids: Array<string | null>): Promise<void> };
  logger: Logger;
}

interface SystemBody {
  type?: unknown;
  body?: unknown;
  wa_id?: unknown;
  new_wa_id?: unknown;
  user_id?: unknown;
  new_user_id?: unknown;
}

/** The new wa_id: from the fields Meta documents, else the last number in the notice's body ("… to +1 555 0100"). */
export function newWaIdOf(sys: SystemBody): string | null {
  for (const v of [sys.new_wa_id, sys.wa_id]) {
    if (typeof v === "string" || typeof v === "number") {
      const digits = String(v).replace(/\D/g, "");
      if (digits.length >= 3 && digits.length <= 15) return digits;
    }
  }
  if (typeof sys.body === "string") {
    const m = /\bto\s+[^\d+]*(\+?[\d\s().-]{6,25})\s*\.?\s*$/i.exec(sys.body);
    const digits = m?.[1]?.replace(/\D/g, "");
    if (digits && digits.length >= 6 && digits.length <= 15) return digits;
  }
  return null;
}

export function systemMessageHandler(deps: SystemMessageDeps): MessageHandler {
  return {
    name: "system",
    usesTx: (message) => message.type === "system",
    async handle(ctx: RouteContext): Promise<RouteResult | null> {
      if (ctx.message.type !== "system") return null;
      const sys = ((ctx.message as Record<string, unknown>).system ?? {}) as SystemBody;
      const kind = typeof sys.type === "string" ? sys.type : "";
      if (!(SYSTEM_KINDS as readonly string[]).includes(kind)) return { replies: [] };

      const { tx, tenant, now } = ctx;
      const contact = await tx.contact.findUnique({ where: { id: ctx.contact.id } });
      if (!contact) return { replies: [] };
      const data: Prisma.ContactUpdateInput = { verifiedAt: null, reverifyRequiredAt: now };
      let to = contact.phoneE164;
      let userId = contact.userId;
      let conflict = false;

      if (kind === "user_changed_number") {
        const waId = newWaIdOf(sys);
        if (waId && waId !== contact.waId) {
          const holder = await tx.contact.findFirst({ where: { tenantId: tenant.id, waId, id: { not: contact.id } }, select: { id: true } });
          if (holder) {
            // someone already writes from the new number: it keeps it, and must verify again too
            conflict = true;
            await tx.contact.update({ where: { id: holder.id }, data: { verifiedAt: null, reverifyRequiredAt: now } });
          } else {
            data.waId = waId;
            data.phoneE164 = `+${waId}`;
            to = `+${waId}`;
          }
        }
      } else if (kind === "user_changed_user_id") {
        const raw = typeof sys.new_user_id === "string" ? sys.new_user_id : typeof sys.user_id === "string" ? sys.user_id : null;
        const next = raw?.trim().slice(0, 128) || null;
        if (next && next !== contact.userId) {
          const holder = await tx.contact.findFirst({ where: { tenantId: tenant.id, userId: next, id: { not: contact.id } }, select: { id: true } });
          if (holder) conflict = true;
          else {
            data.userId = next;
            userId = next;
          }
        }
      }

      await tx.contact.update({ where: { id: contact.id }, data });
      await recordAudit(tx, {
        tenantId: tenant.id,
        type: "contact.number_changed",
        actor: "customer",
        subject: contact.id,
        data: { kind, from: maskPhone(contact.phoneE164) ?? null, to: maskPhone(to) ?? null, userIdChanged: userId !== contact.userId, conflict },
        at: now,
      });
      const eventId = await EventPublisher.publish(tx, {
        tenantId: tenant.id,
        type: "contact.number_changed",
        data: {
          contactId: contact.id,
          from: eventNumber(contact.phoneE164),
          to: eventNumber(to),
          ...(userId !== contact.userId ? { fromUserId: contact.userId ?? undefined, userId: userId ?? undefined } : {}),
          reason: conflict ? `${kind}_conflict` : kind,
          reverifyRequired: true,
        },
        now,
      });
      if (conflict) deps.logger.warn({ contactId: contact.id, kind }, "identity change names a number or user id another contact holds: not moved");
      else deps.logger.info({ contactId: contact.id, kind, from: maskPhone(contact.phoneE164), to: maskPhone(to) }, "contact identity changed; re-verification required");

      const running = ctx.session.flow !== null && !ctx.session.handoffAt;
      return {
        replies: [],
        ...(running ? { session: { flow: null, flowVersion: null, step: null, variables: {}, state: {}, expiresAt: null } } : {}),
        afterCommit: () =>
          deps.eventPublisher.dispatch([eventId]).catch((err: Error) => deps.logger.warn({ err: err.message }, "event dispatch failed; the sweep will retry")),
      };
    },
  };
}
