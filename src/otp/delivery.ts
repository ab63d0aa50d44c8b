import type { Tx } from "../db/prisma";
import type { BatchStatement, Queryable } from "../db/sql";
import type { Channel, TenantSettings } from "../tenants/settings";

/**
 * Work a transaction decided on, to be handed to the queues after it commits (ids only): outbound WhatsApp
 * messages, SMS/voice deliveries, business events, and delivery time-outs that trigger a fallback.
 */
export interface PostCommit {
  messages: string[];
  deliveries: string[];
  events: string[];
  timeouts: { deliveryId: string; delayMs: number }[];
}

export function emptyPostCommit(): PostCommit {
  return { messages: [], deliveries: [], events: [], timeouts: [] };
}

export interface PlanInput {
  verificationId: string;
  channel: Channel;
  reason: "requested" | "resend" | "fallback";
  now: Date;
}

/**
 * How a verification's code reaches the customer: WhatsApp authentication template first, then the tenant's
 * fallback channels (SMS, then a voice call). Implemented in src/otp/delivery.planner.ts.
 */
export interface DeliveryPlanner {
  /** whether this deployment can send on the channel at all (WhatsApp always; SMS/voice when a provider is set) */
  available(channel: Channel): boolean;
  /** inside the caller's transaction: record an OtpDelivery and the messages/jobs that carry the code */
  plan(tx: Tx, post: PostCommit, input: PlanInput): Promise<void>;
  /** after commit: dispatch what `plan` and the events recorded */
  afterCommit(post: PostCommit): Promise<void>;
  /** optional, for the SQL hot path (see OtpDeliveryPlanner): `plan` as statements */
  contactStatement?(tenantId: string, phoneE164: string): BatchStatement;
  contactAfterRace?(q: Queryable, tenantId: string, phoneE164: string): Promise<{ id: string; lastInboundAt: Date | null }>;
  planStatements?(
    post: PostCommit,
    input: PlanInput,
    /** `to`: the number, so that a test number's code never goes out on a paid channel */
    v: { id: string; tenantId: string; locale: string | null; to?: string },
    settings: TenantSettings,
    contact: { id: string; lastInboundAt: Date | null } | null,
  ): BatchStatement[];
}
