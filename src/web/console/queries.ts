import type { Queue } from "bullmq";
import type { PrismaClient } from "../../db/prisma";
import { presentVerification } from "../../otp/presenter";
import { NOT_STEP_UP } from "../../tenants/step-up-purpose";

/**
 * The console's read models: lists and counts the admin API has no route for. Every query is scoped to one tenant
 * (the signed-in key's, or the one the deployment's admin picked); objects are presented exactly as the APIs present
 * them (a verification is the Verify API's object: never a code).
 */

export const VERIFICATION_STATUSES = ["pending", "approved", "expired", "max_attempts_reached", "canceled"] as const;
export type VerificationStatusName = (typeof VERIFICATION_STATUSES)[number];

export async function listVerifications(prisma: PrismaClient, tenantId: string, opts: { status?: VerificationStatusName; limit: number }) {
  const rows = await prisma.verification.findMany({
    // admin step-up codes (src/tenants/step-up.ts) are not the business's verifications
    where: { tenantId, ...NOT_STEP_UP, ...(opts.status ? { status: opts.status } : {}) },
    include: { deliveries: { orderBy: { createdAt: "asc" } } },
    orderBy: { createdAt: "desc" },
    take: opts.limit,
  });
  return rows.map((v) => presentVerification(v));
}

/** What a person would read in a message row: its text, the button tapped, the template's name. Never a code. */
export function messagePreview(type: string, payload: unknown): string {
  const inner = ((payload as Record<string, unknown> | null)?.[type] ?? {}) as Record<string, any>;
  switch (type) {
    case "text":
      return String(inner.body ?? "");
    case "template":
      return `[template ${inner.name ?? "?"}${inner.language?.code ? ` · ${inner.language.code}` : ""}]`;
    case "interactive":
      return String(inner.button_reply?.title ?? inner.list_reply?.title ?? inner.body?.text ?? "[interactive]");
    case "button":
      return String(inner.text ?? inner.payload ?? "[button]");
    default:
      return typeof inner.caption === "string" ? inner.caption : `[${type}]`;
  }
}

export async function listConversations(prisma: PrismaClient, tenantId: string, opts: { limit: number; messages: number }) {
  const contacts = await prisma.contact.findMany({
    where: { tenantId },
    orderBy: [{ lastInboundAt: { sort: "desc", nulls: "last" } }, { updatedAt: "desc" }],
    take: opts.limit,
    include: {
      session: { select: { flow: true, step: true, handoffAt: true } },
      messages: { orderBy: { seq: "desc" }, take: opts.messages },
    },
  });
  return contacts.map((c) => ({
    contactId: c.id,
    phone: c.phoneE164,
    userId: c.userId,
    name: c.profileName,
    verifiedAt: c.verifiedAt?.toISOString() ?? null,
    lastInboundAt: c.lastInboundAt?.toISOString() ?? null,
    flow: c.session?.flow ?? null,
    step: c.session?.step ?? null,
    handedOff: Boolean(c.session?.handoffAt),
    messages: c.messages.reverse().map((m) => ({
      id: m.id,
      direction: m.direction,
      type: m.type,
      preview: messagePreview(m.type, m.payload),
      status: m.status,
      errorCode: m.errorCode,
      errorTitle: m.errorTitle,
      at: m.timestamp.toISOString(),
      sentAt: m.sentAt?.toISOString() ?? null,
      deliveredAt: m.deliveredAt?.toISOString() ?? null,
      readAt: m.readAt?.toISOString() ?? null,
      failedAt: m.failedAt?.toISOString() ?? null,
      verificationId: m.verificationId,
    })),
  }));
}

const MINUTES = 60;

/** The charts: verifications per minute (last hour), conversion, delivery failures by Meta error code (last 24 h). */
export async function consoleStats(prisma: PrismaClient, tenantId: string, now = new Date()) {
  const since = new Date(now.getTime() - MINUTES * 60_000);
  const day = new Date(now.getTime() - 24 * 3600_000);
  const [requested, approved, totals, failures] = await Promise.all([
    prisma.$queryRaw<{ m: Date; n: number }[]>`
      SELECT date_trunc('minute', created_at) AS m, count(*)::int AS n FROM verifications
      WHERE tenant_id = ${tenantId}::uuid AND created_at > ${since} GROUP BY 1`,
    prisma.$queryRaw<{ m: Date; n: number }[]>`
      SELECT date_trunc('minute', ended_at) AS m, count(*)::int AS n FROM verifications
      WHERE tenant_id = ${tenantId}::uuid AND status = 'approved' AND ended_at > ${since} GROUP BY 1`,
    prisma.$queryRaw<{ requested: number; approved: number }[]>`
      SELECT count(*)::int AS requested, (count(*) FILTER (WHERE status = 'approved'))::int AS approved FROM verifications
      WHERE tenant_id = ${tenantId}::uuid AND created_at > ${day}`,
    prisma.$queryRaw<{ code: number | null; title: string | null; n: number }[]>`
      SELECT error_code AS code, max(error_title) AS title, count(*)::int AS n FROM messages
      WHERE tenant_id = ${tenantId}::uuid AND direction = 'outbound' AND status = 'failed' AND coalesce(failed_at, updated_at) > ${day}
      GROUP BY error_code ORDER BY n DESC LIMIT 20`,
  ]);
  const start = Math.floor(since.getTime() / 60_000) + 1;
  const minutes = Array.from({ length: MINUTES }, (_, i) => (start + i) * 60);
  const series = (rows: { m: Date; n: number }[]) => {
    const by = new Map(rows.map((r) => [Math.floor(new Date(r.m).getTime() / 60_000) * 60, r.n]));
    return minutes.map((t) => by.get(t) ?? 0);
  };
  const t = totals[0] ?? { requested: 0, approved: 0 };
  return {
    perMinute: { t: minutes, requested: series(requested), approved: series(approved) },
    conversion: { windowHours: 24, requested: t.requested, approved: t.approved, rate: t.requested ? t.approved / t.requested : null },
    deliveryFailures: failures.map((f) => ({ code: f.code, title: f.title, count: f.n })),
  };
}

/** Jobs waiting, running, delayed and failed in each of the project's queues (the deployment's, not one tenant's). */
export async function queueDepths(queues: Record<string, Queue>) {
  const out = await Promise.all(
    Object.entries(queues).map(async ([name, q]) => {
      const c = await q.getJobCounts("waiting", "prioritized", "active", "delayed", "failed");
      return { name, queue: q.name, waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
    }),
  );
  return { at: new Date().toISOString(), queues: out };
}
