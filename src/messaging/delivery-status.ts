import type { MessageStatus } from "../generated/prisma/enums";
import { randomUUID } from "node:crypto";
import type { Tx } from "../db/prisma";
import { prismaLocks, type Queryable, type TransactionOptions } from "../db/sql";

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
 * - A status webhook costs one round trip: BEGIN, the lock, APPLY_STATUS (these rules in SQL) and COMMIT pipelined.
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

/**
 * Serialises every writer of one (tenant, wamid) until the end of the transaction: pass it as the transaction's
 * options (`sql.transaction(fn, wamidLock(…))`), so it is taken in the same round trip as BEGIN.
 */
export function wamidLock(tenantId: string, wamid: string): TransactionOptions {
  return { lockText: `${tenantId}:${wamid}` };
}

/** The same lock, inside a Prisma transaction. */
export async function lockWamid(tx: Tx, tenantId: string, wamid: string): Promise<void> {
  await prismaLocks(tx, wamidLock(tenantId, wamid));
}

interface LockedRow extends Timeline {
  id: string;
  verificationId: string | null;
}

type LockedColumns = {
  id: string;
  status: string;
  verification_id: string | null;
  sent_at: Date | null;
  delivered_at: Date | null;
  read_at: Date | null;
  failed_at: Date | null;
  error_code: number | null;
  error_title: string | null;
};

const LOCKED_COLUMNS = `id::text AS id, status::text AS status, verification_id::text AS verification_id, sent_at, delivered_at, read_at, failed_at, error_code, error_title`;

const LOCK_MESSAGE = {
  name: "status_lock_message",
  text: `SELECT ${LOCKED_COLUMNS} FROM messages WHERE tenant_id = $1::uuid AND wamid = $2::text AND direction = 'outbound' FOR UPDATE`,
};

/**
 * One status in ONE statement (one round trip with BEGIN, the wamid lock and COMMIT pipelined around it): locks the
 * message, records the status event (applied; or, with no message yet and $8 = final, unapplied), applies a copy
 * stored unapplied earlier, and writes the merged timeline when it changed. The merge is `mergeStatus` in SQL; the
 * function stays the specification, and test/outbound/status-sql.test.ts checks the two agree on random timelines.
 */
const APPLY_STATUS = {
  name: "status_apply",
  text: `WITH m AS (
  SELECT id, status::text AS status, verification_id, sent_at, delivered_at, read_at, failed_at, error_code, error_title
    FROM messages WHERE tenant_id = $1::uuid AND wamid = $2::text AND direction = 'outbound' FOR UPDATE
), ev AS (
  INSERT INTO status_events (id, tenant_id, wamid, status, timestamp, error_code, error_title, applied)
  SELECT $3::uuid, $1::uuid, $2::text, $4::text, $5::timestamptz, $6::int, $7::text, EXISTS (SELECT 1 FROM m)
   WHERE EXISTS (SELECT 1 FROM m) OR $8::boolean
  ON CONFLICT DO NOTHING
  RETURNING applied
), stored AS (
  UPDATE status_events SET applied = true
   WHERE tenant_id = $1::uuid AND wamid = $2::text AND status = $4::text AND applied = false AND EXISTS (SELECT 1 FROM m)
  RETURNING id
), merged AS (
  SELECT m.*,
         CASE WHEN $4::text = 'sent' THEN LEAST(m.sent_at, $5::timestamptz) ELSE m.sent_at END AS n_sent,
         CASE WHEN $4::text = 'delivered' THEN LEAST(m.delivered_at, $5::timestamptz) ELSE m.delivered_at END AS n_delivered,
         CASE WHEN $4::text = 'read' THEN LEAST(m.read_at, $5::timestamptz) ELSE m.read_at END AS n_read,
         ($4::text = 'failed' AND (m.failed_at IS NULL OR $5::timestamptz >= m.failed_at)) AS takes_failure
    FROM m
), timeline AS (
  SELECT merged.*,
         CASE WHEN takes_failure THEN $5::timestamptz ELSE failed_at END AS n_failed,
         CASE WHEN takes_failure THEN COALESCE($6::int, error_code) ELSE error_code END AS n_error_code,
         CASE WHEN takes_failure THEN COALESCE($7::text, error_title) ELSE error_title END AS n_error_title
    FROM merged
), derived AS (
  SELECT timeline.*,
         CASE
           WHEN $4::text NOT IN ('sent', 'delivered', 'read', 'failed') THEN status
           WHEN n_failed IS NOT NULL AND NOT (COALESCE(n_delivered > n_failed, false) OR COALESCE(n_read > n_failed, false)) THEN 'failed'
           WHEN status = 'read' OR n_read IS NOT NULL THEN 'read'
           WHEN status = 'delivered' OR n_delivered IS NOT NULL THEN 'delivered'
           WHEN status = 'sent' OR n_sent IS NOT NULL THEN 'sent'
           ELSE status
         END AS n_status,
         (EXISTS (SELECT 1 FROM ev) OR EXISTS (SELECT 1 FROM stored)) AS applies
    FROM timeline
), written AS ( -- a data-modifying CTE runs whether or not the final SELECT reads it
  UPDATE messages SET status = d.n_status::"MessageStatus", sent_at = d.n_sent, delivered_at = d.n_delivered, read_at = d.n_read,
         failed_at = d.n_failed, error_code = d.n_error_code, error_title = d.n_error_title, updated_at = $9::timestamptz
    FROM derived d
   WHERE messages.id = d.id AND d.applies
     AND (d.n_status IS DISTINCT FROM d.status OR d.n_sent IS DISTINCT FROM d.sent_at OR d.n_delivered IS DISTINCT FROM d.delivered_at
          OR d.n_read IS DISTINCT FROM d.read_at OR d.n_failed IS DISTINCT FROM d.failed_at
          OR d.n_error_code IS DISTINCT FROM d.error_code OR d.n_error_title IS DISTINCT FROM d.error_title)
)
SELECT (SELECT id::text FROM derived) AS id, (SELECT applies FROM derived) AS applies, (SELECT n_status FROM derived) AS status,
       (SELECT verification_id::text FROM derived) AS verification_id, (SELECT n_error_code FROM derived) AS error_code,
       EXISTS (SELECT 1 FROM ev WHERE NOT applied) AS stored_unapplied`,
};

const UPDATE_TIMELINE = {
  name: "status_update_timeline",
  text: `UPDATE messages SET status = $2::"MessageStatus", sent_at = $3::timestamptz, delivered_at = $4::timestamptz, read_at = $5::timestamptz,
       failed_at = $6::timestamptz, error_code = $7::int, error_title = $8::text, updated_at = $9::timestamptz WHERE id = $1::uuid`,
};

function toLocked(r: LockedColumns): LockedRow {
  return {
    id: r.id,
    verificationId: r.verification_id,
    status: r.status as MessageStatus,
    sentAt: r.sent_at,
    deliveredAt: r.delivered_at,
    readAt: r.read_at,
    failedAt: r.failed_at,
    errorCode: r.error_code,
    errorTitle: r.error_title,
  };
}

async function lockMessage(q: Queryable, tenantId: string, wamid: string): Promise<LockedRow | null> {
  const [r] = await q.query<LockedColumns>(LOCK_MESSAGE, [tenantId, wamid]);
  return r ? toLocked(r) : null;
}

async function writeRow(q: Queryable, before: LockedRow, after: Timeline): Promise<void> {
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
  await q.execute(UPDATE_TIMELINE, [
    before.id, after.status, after.sentAt, after.deliveredAt, after.readAt, after.failedAt, after.errorCode, after.errorTitle, new Date(),
  ]);
}

function same(a: Date | null, b: Date | null): boolean {
  return (a?.getTime() ?? null) === (b?.getTime() ?? null);
}

export type ApplyOutcome =
  | { kind: "applied"; messageId: string; status: MessageStatus; verificationId: string | null; errorCode: number | null }
  | { kind: "duplicate" }
  /** no message has this wamid yet: the caller retries later (nothing was written) */
  | { kind: "held" }
  /** no message has this wamid and the caller gave up waiting: kept unapplied, applied when the wamid is stored */
  | { kind: "stored_unapplied" };

/**
 * Inside the caller's transaction, which holds `wamidLock(tenantId, wamid)`: records one status webhook and applies
 * it to its message. `final` = the caller will not retry: a status whose message is unknown is then stored unapplied.
 * `last` = nothing else runs in the transaction after this: its last write carries the COMMIT (one round trip less).
 */
export async function recordStatus(q: Queryable, tenantId: string, wamid: string, update: StatusUpdate, opts: { final: boolean; last?: boolean }): Promise<ApplyOutcome> {
  const values = [tenantId, wamid, randomUUID(), update.status, update.timestamp, update.errorCode ?? null, update.errorTitle?.slice(0, 500) ?? null, opts.final, new Date()];
  const [r] = await q.query<{ id: string | null; applies: boolean | null; status: string | null; verification_id: string | null; error_code: number | null; stored_unapplied: boolean }>(
    APPLY_STATUS,
    values,
    { commit: opts.last === true },
  );
  if (!r?.id) {
    if (!opts.final) return { kind: "held" };
    return r?.stored_unapplied ? { kind: "stored_unapplied" } : { kind: "duplicate" };
  }
  if (!r.applies) return { kind: "duplicate" };
  return { kind: "applied", messageId: r.id, status: r.status as MessageStatus, verificationId: r.verification_id, errorCode: r.error_code };
}

const HELD_STATUSES = {
  name: "status_held",
  text: `SELECT id::text AS id, status, timestamp, error_code, error_title FROM status_events
  WHERE tenant_id = $1::uuid AND wamid = $2::text AND applied = false ORDER BY timestamp ASC`,
};

/**
 * Inside the send worker's transaction (holding `wamidLock`), right after the wamid is stored: applies the statuses
 * that arrived before it (kept unapplied by the status worker), oldest first. Returns how many were applied.
 */
export async function applyHeldStatuses(q: Queryable, tenantId: string, wamid: string): Promise<number> {
  const held = await q.query<{ id: string; status: string; timestamp: Date; error_code: number | null; error_title: string | null }>(HELD_STATUSES, [tenantId, wamid]);
  if (held.length === 0) return 0;
  const row = await lockMessage(q, tenantId, wamid);
  if (!row) return 0;
  let state: Timeline = row;
  for (const e of held) {
    state = mergeStatus(state, { status: e.status, timestamp: e.timestamp, errorCode: e.error_code, errorTitle: e.error_title });
  }
  await writeRow(q, row, state);
  await q.execute(`UPDATE status_events SET applied = true WHERE id = ANY($1::uuid[])`, [held.map((e) => e.id)]);
  return held.length;
}
