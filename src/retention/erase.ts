import { recordAudit } from "../audit/audit";
import { Prisma, type PrismaClient, type Tx } from "../db/prisma";

/** What an erased contact looks like: its identifiers are null, its name this marker. */
export const ERASED_NAME = "[erased]";
/** What replaces an erased number in verifications and in JSON documents (event payloads, stored responses). */
export const ERASED_NUMBER = "+erased";
export const ERASED_PAYLOAD = { erased: true } as const;

export interface EraseResult {
  contactId: string;
  messages: number;
  verifications: number;
  sessions: number;
  logins: number;
  pins: number;
  pinResets: number;
  numberBlocks: number;
  documents: number;
}

/**
 * Erases one contact's personal data, keeping the counts (right to erasure, GDPR art. 17):
 * - its messages stay (type, status, timestamps, wamid: the dedupe key) but their payload becomes `{"erased":true}`;
 *   outbound ones still queued or sending are failed (there is nothing left to send);
 * - its session, logins, PIN, PIN reset links and the number's blocks are deleted;
 * - its verifications keep status and counts, their number becomes "+erased" (pending ones are canceled first:
 *   at most one may be pending per number and purpose) and the client IP and any code copy are dropped;
 * - the number, BSUID, name and username left in JSON documents of the tenant (events for the callback, stored
 *   Idempotency-Key answers, audit details) are replaced, as whole JSON strings;
 * - the contact row stays (ids elsewhere point at it) with wa_id, user_id, phone_e164, username and locale null and
 *   profile_name "[erased]"; null keeps the (tenant, wa_id) and (tenant, user_id) unique keys free.
 * An audit row `contact.erased` (the number masked) is written in the same transaction. Returns null when the
 * tenant has no such contact.
 */
export async function eraseContact(prisma: PrismaClient, tenantId: string, contactId: string, actor: string, now: Date = new Date()): Promise<EraseResult | null> {
  return prisma.$transaction((tx) => eraseInTx(tx, tenantId, contactId, actor, now), { maxWait: 10_000, timeout: 60_000 });
}

async function eraseInTx(tx: Tx, tenantId: string, contactId: string, actor: string, now: Date): Promise<EraseResult | null> {
  const rows = await tx.$queryRaw<Array<{ wa_id: string | null; user_id: string | null; phone_e164: string | null; profile_name: string | null; username: string | null }>>`
    SELECT wa_id, user_id, phone_e164, profile_name, username FROM contacts
    WHERE id = ${contactId}::uuid AND tenant_id = ${tenantId}::uuid FOR UPDATE`;
  const c = rows[0];
  if (!c) return null;

  const numbers = [...new Set([c.phone_e164, c.wa_id ? `+${c.wa_id}` : null].filter((v): v is string => !!v))];
  // identifiers that may sit in JSON documents as whole strings
  const needles = [...new Set([...numbers, c.wa_id, c.user_id, c.profile_name === ERASED_NAME ? null : c.profile_name, c.username].filter((v): v is string => !!v && v.length >= 3))];

  const messages = await tx.$executeRaw`
    UPDATE messages SET payload = ${JSON.stringify(ERASED_PAYLOAD)}::jsonb,
      status = CASE WHEN status IN ('queued', 'sending') THEN 'failed'::"MessageStatus" ELSE status END,
      failed_at = CASE WHEN status IN ('queued', 'sending') THEN ${now} ELSE failed_at END,
      error_title = CASE WHEN status IN ('queued', 'sending') THEN 'contact erased' ELSE error_title END,
      updated_at = ${now}
    WHERE tenant_id = ${tenantId}::uuid AND contact_id = ${contactId}::uuid`;
  const sessions = await tx.$executeRaw`DELETE FROM sessions WHERE tenant_id = ${tenantId}::uuid AND contact_id = ${contactId}::uuid`;
  const logins = await tx.$executeRaw`DELETE FROM logins WHERE tenant_id = ${tenantId}::uuid AND contact_id = ${contactId}::uuid`;
  const pins = await tx.$executeRaw`DELETE FROM contact_pins WHERE tenant_id = ${tenantId}::uuid AND contact_id = ${contactId}::uuid`;
  const pinResets = await tx.$executeRaw`DELETE FROM pin_reset_tokens WHERE tenant_id = ${tenantId}::uuid AND contact_id = ${contactId}::uuid`;
  const numberBlocks = numbers.length
    ? await tx.$executeRaw`DELETE FROM number_blocks WHERE tenant_id = ${tenantId}::uuid AND phone IN (${Prisma.join(numbers)})`
    : 0;

  const verificationMatch = numbers.length
    ? Prisma.sql`tenant_id = ${tenantId}::uuid AND (contact_id = ${contactId}::uuid OR "to" IN (${Prisma.join(numbers)}))`
    : Prisma.sql`tenant_id = ${tenantId}::uuid AND contact_id = ${contactId}::uuid`;
  // end the pending ones first: the partial unique index allows one pending per (tenant, to, purpose)
  await tx.$executeRaw`
    UPDATE verifications SET status = 'canceled', ended_at = ${now}, code_enc = NULL, next_send_at = NULL, updated_at = ${now}
    WHERE ${verificationMatch} AND status = 'pending'`;
  const verifications = await tx.$executeRaw`
    UPDATE verifications SET "to" = ${ERASED_NUMBER}, client_ip = NULL, code_enc = NULL, updated_at = ${now}
    WHERE ${verificationMatch}`;

  let documents = 0;
  for (const needle of needles) {
    const quoted = JSON.stringify(needle);
    const replacement = JSON.stringify(numbers.includes(needle) ? ERASED_NUMBER : ERASED_NAME);
    documents += await tx.$executeRaw`
      UPDATE event_deliveries SET payload = replace(payload::text, ${quoted}, ${replacement})::jsonb
      WHERE tenant_id = ${tenantId}::uuid AND strpos(payload::text, ${quoted}) > 0`;
    documents += await tx.$executeRaw`
      UPDATE idempotency_records SET response = replace(response::text, ${quoted}, ${replacement})::jsonb
      WHERE tenant_id = ${tenantId}::uuid AND response IS NOT NULL AND strpos(response::text, ${quoted}) > 0`;
    documents += await tx.$executeRaw`
      UPDATE audit_events SET data = replace(data::text, ${quoted}, ${replacement})::jsonb
      WHERE tenant_id = ${tenantId}::uuid AND strpos(data::text, ${quoted}) > 0`;
  }

  await tx.$executeRaw`
    UPDATE contacts SET wa_id = NULL, user_id = NULL, phone_e164 = NULL, profile_name = ${ERASED_NAME}, username = NULL,
      locale = NULL, verified_at = NULL, reverify_required_at = NULL, updated_at = ${now}
    WHERE id = ${contactId}::uuid`;

  const result: EraseResult = { contactId, messages, verifications, sessions, logins, pins, pinResets, numberBlocks, documents };
  await recordAudit(tx, {
    tenantId,
    type: "contact.erased",
    actor,
    subject: numbers[0] ?? contactId,
    data: { contactId, messages, verifications, sessions, logins, numberBlocks, documents },
    at: now,
  });
  return result;
}

/** The tenant's contact with this number (E.164), or null. */
export async function findContactByNumber(prisma: PrismaClient | Tx, tenantId: string, e164: string) {
  return prisma.contact.findFirst({ where: { tenantId, OR: [{ phoneE164: e164 }, { waId: e164.slice(1) }] }, orderBy: { createdAt: "asc" }, select: { id: true } });
}
