import type { MessageStatus } from "../generated/prisma/enums";
import type { Tx } from "../db/prisma";

/**
 * Delivery statuses of outbound messages, applied in whatever order Meta produces them (cloud-api.md §5):
 * `read` without `delivered`, `failed` after `delivered`, `delivered` after `read`, duplicates.
 *
 * - The timeline columns keep the first time each status was seen (sentAt, deliveredAt, readAt, failedAt; the
 *   failure also keeps errorCode / errorTitle from `errors[0]`).
 * - `status` is derived from the timeline: `failed` when a failure is known and no delivered/read has a later
 *   timestamp, else the highest of sent < delivered < read. It never moves down that scale.
 * - Every status is a `StatusEvent` row; its unique (tenant, wamid, status) is the lasting dedupe gate.
 * - Writers of one wamid are serialised by a transaction-scoped advisory lock on (tenant, wamid) and the message
 *   row by SELECT … FOR UPDATE, so two statuses of one message, or a status and the send storing the wamid,
 *   can never lose each other.
 */
export interface StatusUpdate {
  status: string;
  timestamp: Date;
  errorCode?: number | null;
  errorTitle?: string | null;
}

export interface Timeline {
  status: MessageStatus;
  sentAt: Date | null;
  deliveredAt: Date | null;
  readAt: Date | null;
  failedAt: Date | null;
  errorCode: number | null;
  errorTitle: string | null;
}

const RANK: Partial<Record<MessageStatus, number>> = { sent: 1, delivered: 2, read: 3 };

/** Pure: the row after one more status. Statuses we do not track (e.g. `played`) change nothing. */
export function mergeStatus(row: Timeline, update: StatusUpdate): Timeline {
  const next: Timeline = { ...row };
  const ts = update.timestamp;
  switch (update.status) {
    case "sent":
      next.sentAt = earliest(row.sentAt, ts);
      break;
    case "delivered":
      next.deliveredAt = earliest(row.deliveredAt, ts);
      break;
    case "read":
      next.readAt = earliest(row.readAt, ts);
      break;
    case "failed":
      if (!row.failedAt || ts.getTime() >= row.failedAt.getTime()) {
        next.failedAt = ts;
        next.errorCode = update.errorCode ?? row.errorCode;
        next.errorTitle = update.errorTitle ?? row.errorTitle;
      }
      break;
    default:
      return row;
  }
  next.status = deriveStatus(next, row.status);
  return next;
}

/** failed if a failure is known and no delivered/read is later; else the highest reached (never lower than now). */
export function deriveStatus(t: Omit<Timeline, "status">, current: MessageStatus): MessageStatus {
  if (t.failedAt) {
    const f = t.failedAt.getTime();
    const laterSuccess = (t.deliveredAt && t.deliveredAt.getTime() > f) || (t.readAt && t.readAt.getTime() > f);
    if (!laterSuccess) return "failed";
  }
  let best: MessageStatus | null = t.readAt ? "read" : t.deliveredAt ? "delivered" : t.sentAt ? "sent" : null;
  const currentRank = RANK[current];
  if (currentRank !== undefined && (best === null || currentRank > (RANK[best] ?? 0))) best = current;
  return best ?? current;
}

function earliest(a: Date | null, b: Date): Date {
  return a && a.getTime() <= b.getTime() ? a : b;
}

/** Serialises every writer of one (tenant, wamid) until the end of the transaction. */
export async function lockWamid(tx: Tx, tenantId: string, wamid: string): Promise<void> {
  await tx.$queryRaw`SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtextextended(${`${tenantId}:${wamid}`}, 42))) AS l`;
}

interface LockedRow extends Timeline {
  id: string;
}

async function lockMessage(tx: Tx, tenantId: string, wamid: string): Promise<LockedRow | null> {
  const rows = await tx.$queryRaw<
    Array<{ id: string; status: string; sent_at: Date | null; delivered_at: Date | null; read_at: Date | null; failed_at: Date | null; error_code: number | null; error_title: string | null }>
  >`SELECT id::text AS id, status::text AS status, sent_at, delivered_at, read_at, failed_at, error_code, error_title
      FROM messages WHERE tenant_id = ${tenantId}::uuid AND wamid = ${wamid} AND direction = 'outbound' FOR UPDATE`;
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id,
    status: r.status as MessageStatus,
    sentAt: r.sent_at,
    deliveredAt: r.delivered_at,
    readAt: r.read_at,
    failedAt: r.failed_at,
    errorCode: r.error_code,
    errorTitle: r.error_title,
  };
}

async function writeRow(tx: Tx, before: LockedRow, after: Timeline): Promise<void> {
  if (
    before.status === after.status &&
    same(before.sentAt, after.sentAt) &&
    same(before.deliveredAt, after.deliveredAt) &&
    same(before.readAt, after.readAt) &&
    same(before.failedAt, after.failedAt) &&
    before.errorCode === after.errorCode &&
    before.errorTitle === after.errorTitle
  ) {
    return;
  }
  await tx.message.update({
    where: { id: before.id },
    data: {
      status: after.status,
      sentAt: after.sentAt,
      deliveredAt: after.deliveredAt,
      readAt: after.readAt,
      failedAt: after.failedAt,
      errorCode: after.errorCode,
      errorTitle: after.errorTitle,
    },
  });
}

function same(a: Date | null, b: Date | null): boolean {
  return (a?.getTime() ?? null) === (b?.getTime() ?? null);
}

export type ApplyOutcome =
  | { kind: "applied"; messageId: string; status: MessageStatus }
  | { kind: "duplicate" }
  /** no message has this wamid yet: the caller retries later (nothing was written) */
  | { kind: "held" }
  /** no message has this wamid and the caller gave up waiting: kept unapplied, applied when the wamid is stored */
  | { kind: "stored_unapplied" };

/**
 * Inside the caller's transaction: records one status webhook and applies it to its message.
 * `final` = the caller will not retry: a status whose message is unknown is then stored unapplied.
 */
export async function recordStatus(tx: Tx, tenantId: string, wamid: string, update: StatusUpdate, opts: { final: boolean }): Promise<ApplyOutcome> {
  await lockWamid(tx, tenantId, wamid);
  const row = await lockMessage(tx, tenantId, wamid);
  const event = {
    tenantId,
    wamid,
    status: update.status,
    timestamp: update.timestamp,
    errorCode: update.errorCode ?? null,
    errorTitle: update.errorTitle?.slice(0, 500) ?? null,
  };
  if (!row) {
    if (!opts.final) return { kind: "held" };
    const { count } = await tx.statusEvent.createMany({ data: [{ ...event, applied: false }], skipDuplicates: true });
    return count === 1 ? { kind: "stored_unapplied" } : { kind: "duplicate" };
  }
  const { count } = await tx.statusEvent.createMany({ data: [{ ...event, applied: true }], skipDuplicates: true });
  if (count === 0) {
    // Seen before. Only a copy stored unapplied (its message was unknown then) still has work to do.
    const existing = await tx.statusEvent.findUnique({ where: { tenantId_wamid_status: { tenantId, wamid, status: update.status } } });
    if (!existing || existing.applied) return { kind: "duplicate" };
    await tx.statusEvent.update({ where: { id: existing.id }, data: { applied: true } });
  }
  const next = mergeStatus(row, update);
  await writeRow(tx, row, next);
  return { kind: "applied", messageId: row.id, status: next.status };
}

/**
 * Inside the send worker's transaction, right after the wamid is stored: applies the statuses that arrived before
 * it (kept unapplied by the status worker), oldest first. Returns how many were applied.
 */
export async function applyHeldStatuses(tx: Tx, tenantId: string, wamid: string): Promise<number> {
  const held = await tx.statusEvent.findMany({ where: { tenantId, wamid, applied: false }, orderBy: { timestamp: "asc" } });
  if (held.length === 0) return 0;
  const row = await lockMessage(tx, tenantId, wamid);
  if (!row) return 0;
  let state: Timeline = row;
  for (const e of held) {
    state = mergeStatus(state, { status: e.status, timestamp: e.timestamp, errorCode: e.errorCode, errorTitle: e.errorTitle });
  }
  await writeRow(tx, row, state);
  await tx.statusEvent.updateMany({ where: { id: { in: held.map((e) => e.id) } }, data: { applied: true } });
  return held.length;
}
