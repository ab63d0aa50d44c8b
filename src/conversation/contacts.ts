import type { Tx } from "../db/prisma";
import type { InboundItem } from "../ingest/envelope";

export interface ContactRow {
  id: string;
  waId: string | null;
  userId: string | null;
  phoneE164: string | null;
  profileName: string | null;
  locale: string | null;
  lastInboundAt: Date | null;
  /** a fresh verification is required before the bot does anything else (business request, number change) */
  reverifyRequiredAt?: Date | null;
  verifiedAt?: Date | null;
  /** read with the contact when the inbound path loads it: a code of this number locked since it last verified */
  lockedSinceVerified?: boolean;
}

/**
 * Finds or creates the contact an inbound message is from. A contact is known by its BSUID (`user_id`) and/or
 * its phone-based `wa_id`; Meta may send either or both, so both keys are looked up and filled in as they appear.
 */
export async function upsertContact(tx: Tx, tenantId: string, item: InboundItem, at: Date): Promise<{ contact: ContactRow; created: boolean }> {
  const waId = item.message.from ?? item.contact?.wa_id ?? null;
  const userId = item.message.from_user_id ?? item.contact?.user_id ?? null;
  const profileName = item.contact?.profile?.name ?? null;
  const username = item.contact?.profile?.username ?? null;

  const or = [...(userId ? [{ userId }] : []), ...(waId ? [{ waId }] : [])];
  const existing = await tx.contact.findFirst({ where: { tenantId, OR: or }, orderBy: { createdAt: "asc" } });
  const lastInboundAt = !existing?.lastInboundAt || existing.lastInboundAt < at ? at : existing.lastInboundAt;
  if (existing) {
    const contact = await tx.contact.update({
      where: { id: existing.id },
      data: {
        waId: existing.waId ?? waId,
        userId: existing.userId ?? userId,
        phoneE164: existing.phoneE164 ?? (waId ? `+${waId}` : null),
        profileName: profileName ?? existing.profileName,
        username: username ?? existing.username,
        lastInboundAt,
      },
    });
    return { contact, created: false };
  }
  const contact = await tx.contact.create({
    data: { tenantId, waId, userId, phoneE164: waId ? `+${waId}` : null, profileName, username, lastInboundAt },
  });
  return { contact, created: true };
}
