import { randomUUID } from "node:crypto";
import type { PrismaClient, Tx } from "../db/prisma";
import type { BatchStatement } from "../db/sql";
import { Prisma } from "../db/prisma";
import { maskPhone } from "../observability/logger";
import { assertNoSecrets } from "../shared/no-secrets";

/**
 * The audit trail: who did what to which verification, number or setting, and when. Rows are written in the
 * transaction of the change they describe (pass `tx`), so the trail never shows a change that was rolled back.
 *
 * - `type`: dotted, lower case (`verification.created`, `verification.checked`, `number.blocked`,
 *   `settings.callback_set`, `api_key.revoked`, …);
 * - `actor`: who: `api_key:<id>`, `admin`, `customer` (the WhatsApp user), `system`;
 * - `subject`: what, when not a verification: an id, or a phone number, which is always stored masked
 *   (`maskPhone`: +4477•••••23; an unmasked E.164 number passed here is masked before it is written);
 * - `data`: small JSON details; never a code, OTP, PIN, secret or token (refused at any depth, see
 *   src/shared/no-secrets.ts), and numbers in it should be masked by the caller.
 */
export interface AuditInput {
  tenantId: string | null;
  type: string;
  actor: string;
  verificationId?: string | null;
  subject?: string | null;
  data?: Record<string, unknown>;
  /** default: the database's now() */
  at?: Date;
}

export interface AuditRecord {
  id: string;
  tenantId: string | null;
  type: string;
  actor: string;
  verificationId: string | null;
  subject: string | null;
  data: Record<string, unknown>;
  createdAt: Date;
}

export interface AuditQuery {
  tenantId: string;
  verificationId?: string;
  /** one type or several */
  type?: string | string[];
  /** an id, a masked number, or a number in E.164 (masked before matching, so numbers with the same mask match) */
  subject?: string;
  /** createdAt ≥ since */
  since?: Date;
  /** createdAt < until */
  until?: Date;
  /** default 50, at most 500 */
  limit?: number;
  /** `nextCursor` of the previous page */
  cursor?: string;
}

export const AUDIT_MAX_LIMIT = 500;
const TYPE_RE = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/;
const PHONE_RE = /^\+?[1-9]\d{6,14}$/;

export class InvalidAuditQueryError extends Error {
  override readonly name = "InvalidAuditQueryError";
  readonly code = "invalid_audit_query";
}

/** An E.164-looking subject is masked; anything else (ids, already masked numbers) is kept as is. */
export function auditSubject(subject: string | null | undefined): string | null {
  if (!subject) return null;
  const compact = subject.replace(/[\s-]/g, "");
  if (PHONE_RE.test(compact)) return maskPhone(compact.startsWith("+") ? compact : `+${compact}`) ?? null;
  return subject;
}

function checkedData(input: AuditInput): Record<string, unknown> {
  if (!TYPE_RE.test(input.type) || input.type.length > 100) throw new Error(`invalid audit type "${input.type}"`);
  if (!input.actor || input.actor.length > 200) throw new Error("an audit actor is required (at most 200 characters)");
  const data = input.data ?? {};
  assertNoSecrets(data, { words: ["token", "tokens"], what: `audit ${input.type}` });
  return data;
}

const INSERT_AUDIT = `INSERT INTO audit_events (id, tenant_id, type, actor, verification_id, subject, data, created_at)
VALUES ($1::uuid, $2::uuid, $3::text, $4::text, $5::uuid, $6::text, $7::jsonb, COALESCE($8::timestamptz, now()))`;

/**
 * `recordAudit` as a statement for the hot paths' SQL transactions (src/db/sql.ts `batch`): the same checks
 * (thrown here, before anything is sent), the same row.
 */
export function auditStatement(input: AuditInput): BatchStatement & { id: string } {
  const data = checkedData(input);
  const id = randomUUID();
  return {
    id,
    statement: INSERT_AUDIT,
    values: [id, input.tenantId, input.type, input.actor, input.verificationId ?? null, auditSubject(input.subject), JSON.stringify(data), input.at ?? null],
  };
}

/** Writes one audit row (in the caller's transaction). Throws SecretInDataError if `data` carries a secret. */
export async function recordAudit(tx: Pick<Tx, "auditEvent">, input: AuditInput): Promise<string> {
  const data = checkedData(input);
  const row = await tx.auditEvent.create({
    data: {
      tenantId: input.tenantId,
      type: input.type,
      actor: input.actor,
      verificationId: input.verificationId ?? null,
      subject: auditSubject(input.subject),
      data: data as Prisma.InputJsonValue,
      ...(input.at ? { createdAt: input.at } : {}),
    },
    select: { id: true },
  });
  return row.id;
}

function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString("base64url");
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const createdAt = new Date(at ?? "");
  if (!id || Number.isNaN(createdAt.getTime()) || !/^[0-9a-f-]{36}$/i.test(id)) throw new InvalidAuditQueryError("invalid cursor");
  return { createdAt, id };
}

/** One tenant's audit rows, newest first, filtered; `nextCursor` is set when there may be more. */
export async function listAudit(prisma: PrismaClient | Tx, q: AuditQuery): Promise<{ items: AuditRecord[]; nextCursor: string | null }> {
  const limit = q.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_MAX_LIMIT) throw new InvalidAuditQueryError(`limit must be an integer from 1 to ${AUDIT_MAX_LIMIT}`);
  const and: Prisma.AuditEventWhereInput[] = [{ tenantId: q.tenantId }];
  if (q.verificationId) and.push({ verificationId: q.verificationId });
  if (q.type !== undefined) and.push({ type: Array.isArray(q.type) ? { in: q.type } : q.type });
  if (q.subject) and.push({ subject: auditSubject(q.subject) });
  if (q.since) and.push({ createdAt: { gte: q.since } });
  if (q.until) and.push({ createdAt: { lt: q.until } });
  if (q.cursor) {
    const c = decodeCursor(q.cursor);
    and.push({ OR: [{ createdAt: { lt: c.createdAt } }, { createdAt: c.createdAt, id: { lt: c.id } }] });
  }
  const rows = await prisma.auditEvent.findMany({
    where: { AND: and },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: limit + 1,
  });
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map((r) => ({
      id: r.id,
      tenantId: r.tenantId,
      type: r.type,
      actor: r.actor,
      verificationId: r.verificationId,
      subject: r.subject,
      data: (r.data ?? {}) as Record<string, unknown>,
      createdAt: r.createdAt,
    })),
    nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
  };
}
