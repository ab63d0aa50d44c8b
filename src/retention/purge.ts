import type { PrismaClient } from "../db/prisma";
import { readSettings, retentionSettingsSchema, type RetentionSettings } from "../tenants/settings";
import { ERASED_NAME, eraseContact } from "./erase";

const DAY_MS = 24 * 3600_000;

export interface PurgeOptions {
  /** rows per DELETE (default 5000) */
  batchSize?: number;
  /** DELETEs per table per tenant and run (default 20): what is left waits for the next run */
  maxBatches?: number;
  /** inactive contacts erased per tenant and run (default 200) */
  maxContacts?: number;
}

export interface PurgeCounts {
  messages: number;
  statusEvents: number;
  auditEvents: number;
  eventDeliveries: number;
  verifications: number;
  pinResetTokens: number;
  idempotencyRecords: number;
  contactsErased: number;
}

const emptyCounts = (): PurgeCounts => ({
  messages: 0, statusEvents: 0, auditEvents: 0, eventDeliveries: 0, verifications: 0, pinResetTokens: 0, idempotencyRecords: 0, contactsErased: 0,
});

/**
 * Deletes what each tenant's `retention` settings no longer keep, in bounded batches
 * (`DELETE … WHERE id IN (SELECT id … LIMIT n)`), so no statement holds locks on many rows for long:
 * - messages older than `messagesDays` (their send attempts cascade), except outbound ones still queued/sending;
 * - status events older than `messagesDays`;
 * - audit rows older than `auditDays` (rows of no tenant: the default window);
 * - callback event deliveries older than `eventDeliveriesDays`, except pending ones;
 * - ended verifications older than `messagesDays` (their OTP deliveries cascade);
 * - PIN reset links used or expired more than a day ago, Idempotency-Key records older than 24 hours;
 * - with `inactiveContactsDays` > 0: contacts with no message either way (and no inbound) for that long are erased
 *   (src/retention/erase.ts: the rows stay, the personal data goes).
 * Returns the counts per tenant id ("*" for the tables not kept per tenant) and the totals.
 */
export async function purgeExpired(
  prisma: PrismaClient,
  now: Date,
  opts: PurgeOptions = {},
): Promise<{ total: PurgeCounts; byTenant: Record<string, PurgeCounts> }> {
  const batchSize = opts.batchSize ?? 5000;
  const maxBatches = opts.maxBatches ?? 20;
  const maxContacts = opts.maxContacts ?? 200;
  const byTenant: Record<string, PurgeCounts> = {};
  const total = emptyCounts();

  /** runs a batched DELETE until fewer than batchSize rows go (or maxBatches ran) */
  const batched = async (run: (limit: number) => Promise<number>): Promise<number> => {
    let sum = 0;
    for (let i = 0; i < maxBatches; i++) {
      const n = await run(batchSize);
      sum += n;
      if (n < batchSize) break;
    }
    return sum;
  };

  const tenants = await prisma.tenant.findMany({ select: { id: true, settings: true }, orderBy: { createdAt: "asc" } });
  for (const t of tenants) {
    let r: RetentionSettings;
    try {
      r = readSettings(t.settings).retention;
    } catch {
      continue; // settings that no longer validate: keep everything rather than guess
    }
    const c = emptyCounts();
    const messagesBefore = new Date(now.getTime() - r.messagesDays * DAY_MS);
    const auditBefore = new Date(now.getTime() - r.auditDays * DAY_MS);
    const eventsBefore = new Date(now.getTime() - r.eventDeliveriesDays * DAY_MS);

    c.messages = await batched((n) => prisma.$executeRaw`
      DELETE FROM messages WHERE id IN (
        SELECT id FROM messages WHERE tenant_id = ${t.id}::uuid AND created_at < ${messagesBefore}
          AND status NOT IN ('queued', 'sending') LIMIT ${n})`);
    c.statusEvents = await batched((n) => prisma.$executeRaw`
      DELETE FROM status_events WHERE id IN (
        SELECT id FROM status_events WHERE tenant_id = ${t.id}::uuid AND created_at < ${messagesBefore} LIMIT ${n})`);
    c.verifications = await batched((n) => prisma.$executeRaw`
      DELETE FROM verifications WHERE id IN (
        SELECT id FROM verifications WHERE tenant_id = ${t.id}::uuid AND status <> 'pending'
          AND COALESCE(ended_at, expires_at, created_at) < ${messagesBefore} LIMIT ${n})`);
    c.auditEvents = await batched((n) => prisma.$executeRaw`
      DELETE FROM audit_events WHERE id IN (
        SELECT id FROM audit_events WHERE tenant_id = ${t.id}::uuid AND created_at < ${auditBefore} LIMIT ${n})`);
    c.eventDeliveries = await batched((n) => prisma.$executeRaw`
      DELETE FROM event_deliveries WHERE id IN (
        SELECT id FROM event_deliveries WHERE tenant_id = ${t.id}::uuid AND status <> 'pending'
          AND created_at < ${eventsBefore} LIMIT ${n})`);

    if (r.inactiveContactsDays > 0) {
      const inactiveBefore = new Date(now.getTime() - r.inactiveContactsDays * DAY_MS);
      const stale = await prisma.$queryRaw<Array<{ id: string }>>`
        SELECT c.id FROM contacts c
        WHERE c.tenant_id = ${t.id}::uuid AND c.profile_name IS DISTINCT FROM ${ERASED_NAME}
          AND COALESCE(c.last_inbound_at, c.created_at) < ${inactiveBefore}
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id
            AND (m.created_at >= ${inactiveBefore} OR m.status IN ('queued', 'sending')))
        ORDER BY c.created_at LIMIT ${maxContacts}`;
      for (const { id } of stale) {
        if (await eraseContact(prisma, t.id, id, "system:retention", now)) c.contactsErased++;
      }
    }
    byTenant[t.id] = c;
    addInto(total, c);
  }

  // not kept per tenant: fixed windows
  const shared = emptyCounts();
  const defaults = retentionSettingsSchema.parse({});
  const auditBefore = new Date(now.getTime() - defaults.auditDays * DAY_MS);
  shared.auditEvents = await batched((n) => prisma.$executeRaw`
    DELETE FROM audit_events WHERE id IN (
      SELECT id FROM audit_events WHERE tenant_id IS NULL AND created_at < ${auditBefore} LIMIT ${n})`);
  const dayAgo = new Date(now.getTime() - DAY_MS);
  shared.pinResetTokens = await batched((n) => prisma.$executeRaw`
    DELETE FROM pin_reset_tokens WHERE id IN (
      SELECT id FROM pin_reset_tokens WHERE used_at < ${dayAgo} OR expires_at < ${dayAgo} LIMIT ${n})`);
  // an Idempotency-Key is honoured for 24 hours
  shared.idempotencyRecords = await batched((n) => prisma.$executeRaw`
    DELETE FROM idempotency_records WHERE id IN (
      SELECT id FROM idempotency_records WHERE created_at < ${dayAgo} LIMIT ${n})`);
  byTenant["*"] = shared;
  addInto(total, shared);
  return { total, byTenant };
}

function addInto(into: PurgeCounts, c: PurgeCounts): void {
  for (const k of Object.keys(into) as Array<keyof PurgeCounts>) into[k] += c[k];
}

/** At most one purge per `everyMs` in this process (the workers' sweep calls this every few seconds). */
export function hourlyPurge(
  prisma: PrismaClient,
  now: () => Date,
  onDone: (result: Awaited<ReturnType<typeof purgeExpired>>) => void,
  everyMs = 3600_000,
): () => Promise<void> {
  let last = -Infinity;
  let running = false;
  return async () => {
    const at = now();
    if (running || at.getTime() - last < everyMs) return;
    running = true;
    last = at.getTime();
    try {
      onDone(await purgeExpired(prisma, at));
    } finally {
      running = false;
    }
  };
}
