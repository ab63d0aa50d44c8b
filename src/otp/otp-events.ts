import type { Tx } from "../db/prisma";
import { auditStatement, recordAudit, type AuditInput } from "../audit/audit";
import type { BatchStatement } from "../db/sql";
import { EventPublisher } from "../events/publisher";
import type { EventData, EventType } from "../events/types";
import { maskPhone } from "../observability/logger";
import type { PostCommit } from "./delivery";
import { isStepUpPurpose } from "../tenants/step-up-purpose";

/** Everything that happens to a verification, in the audit trail's words. */
export type OtpEventType =
  | "requested" | "sent" | "delivered" | "failed" | "fallback" | "checked_right" | "checked_wrong" | "approved"
  | "expired" | "locked" | "canceled" | "reported" | "number_blocked";

/** Audit-only types (a wrong or right attempt is not a status change the business subscribes to). */
const AUDIT_ONLY = new Set<OtpEventType>(["checked_right", "checked_wrong"]);

export interface OtpEventInput {
  tenantId: string;
  type: OtpEventType;
  actor: string;
  now: Date;
  verificationId?: string;
  to: string;
  purpose?: string;
  channel?: string;
  attempts?: number;
  errorCode?: string | number | null;
  reason?: string;
  until?: Date;
  /** fallback: the channel that failed */
  fromChannel?: string;
  /** sent / delivered / failed: who carried the code */
  provider?: string;
}

/**
 * One place that records a verification event: an audit row (number masked) and, for status changes, an event
 * for the business's callback (full number: it is the business's own customer). Never a code.
 */
export class OtpEvents {
  async record(tx: Tx, post: PostCommit, e: OtpEventInput): Promise<void> {
    const { data, audit } = describe(e);
    await recordAudit(tx, audit);
    const event = eventOf(e, data);
    if (!event) return;
    const id = await EventPublisher.publish(tx, event as Parameters<typeof EventPublisher.publish>[1]);
    if (id) post.events.push(id);
  }

  /**
   * `record` as statements for a hot path's SQL transaction (src/db/sql.ts `batch`): the audit row and, for a
   * status change with a callback URL, the event row. `eventsUrl` is the tenant's `settings.events.url` as read
   * in the same request. Event ids are pushed to `post` (dispatched after commit, like `record`'s).
   */
  statements(eventsUrl: string | undefined, post: PostCommit, e: OtpEventInput): BatchStatement[] {
    const { data, audit } = describe(e);
    const out: BatchStatement[] = [auditStatement(audit)];
    const event = eventOf(e, data);
    if (!event) return out;
    const st = EventPublisher.publishStatement(eventsUrl, event as Parameters<typeof EventPublisher.publishStatement>[1]);
    if (st) {
      out.push(st);
      post.events.push(st.id);
    }
    return out;
  }
}

function describe(e: OtpEventInput): { data: Record<string, unknown>; audit: AuditInput } {
  const data: Record<string, unknown> = {
    ...(e.verificationId ? { verificationId: e.verificationId } : {}),
    ...(e.purpose ? { purpose: e.purpose } : {}),
    ...(e.channel ? { channel: e.channel } : {}),
    ...(e.attempts !== undefined ? { attempts: e.attempts } : {}),
    ...(e.errorCode !== undefined && e.errorCode !== null ? { errorCode: String(e.errorCode) } : {}),
    ...(e.reason ? { reason: e.reason } : {}),
    ...(e.until ? { until: e.until.toISOString() } : {}),
    ...(e.fromChannel && e.type === "fallback" ? { fromChannel: e.fromChannel } : {}),
    ...(e.provider && ["sent", "delivered", "failed"].includes(e.type) ? { provider: e.provider } : {}),
  };
  const audit: AuditInput = {
    tenantId: e.tenantId,
    type: e.type === "number_blocked" ? "number.blocked" : `verification.${e.type}`,
    actor: e.actor,
    verificationId: e.verificationId,
    subject: maskPhone(e.to),
    data,
    at: e.now,
  };
  return { data, audit };
}

/** The business event for an OTP event, or null (audit-only types; a report with nothing to describe). */
function eventOf(e: OtpEventInput, data: Record<string, unknown>): { tenantId: string; type: EventType; data: unknown; now: Date } | null {
  if (AUDIT_ONLY.has(e.type)) return null;
  // an admin step-up code's carrier is the step-up service's own business, not the tenant's callback's
  if (e.purpose && isStepUpPurpose(e.purpose)) return null;
  if (e.type === "number_blocked") {
    return {
      tenantId: e.tenantId,
      type: "number.blocked",
      data: { to: e.to, until: (e.until ?? e.now).toISOString(), ...(e.reason ? { reason: e.reason } : {}), ...(e.verificationId ? { verificationId: e.verificationId } : {}) },
      now: e.now,
    };
  }
  if (e.verificationId && e.purpose && e.channel) {
    // verification.* events describe one verification; a report with none pending is told as number.blocked
    const type = `verification.${e.type}` as Exclude<EventType, "number.blocked">;
    return { tenantId: e.tenantId, type, data: { ...data, to: e.to, status: statusOf(e.type) } as EventData<typeof type>, now: e.now };
  }
  return null;
}

function statusOf(type: OtpEventType): string {
  switch (type) {
    case "approved":
      return "approved";
    case "expired":
      return "expired";
    case "locked":
      return "max_attempts_reached";
    case "canceled":
    case "reported":
      return "canceled";
    default:
      return "pending";
  }
}
