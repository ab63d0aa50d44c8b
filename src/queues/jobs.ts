import { createHash } from "node:crypto";
import type { JobsOptions } from "bullmq";

/**
 * The job catalogue: every queue, its job names, what a job carries and how it is retried.
 * Jobs carry ids or encrypted blobs, never message text or codes in clear: BullMQ keeps job data readable in Redis.
 */
export const QUEUES = {
  /** one job per inbound message; data is an encrypted InboundItem */
  inbound: "inbound",
  /** one job per (wamid, status); data is an encrypted StatusItem */
  statuses: "statuses",
  /** one job per outbound message row; data is { messageId, requestId? } */
  outbound: "outbound",
  /** one job per event delivery row (a signed POST to the business's callback URL); data is { deliveryId } */
  events: "events",
  /** OTP delivery work: `deliver` / `timeout` with { deliveryId }, and the repeatable `expire-sweep` (no data) */
  otp: "otp",
  /** a flow's http step, called outside any transaction (src/flows/flow-call.ts); data is an encrypted FlowCall */
  flowCalls: "flow-calls",
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export interface EncryptedJob {
  enc: string;
}

export interface OutboundJob {
  messageId: string;
  /** the id of the request (webhook or API call) that led to this message, for tracing; sent as X-Request-Id */
  requestId?: string;
}

export interface EventJob {
  deliveryId: string;
}

/** `deliver` (send an SMS/voice code) and `timeout` (fall back when nothing was delivered): an OtpDelivery id only */
export interface OtpJob {
  deliveryId?: string;
}

/** BullMQ custom ids may not contain ':'; a hex digest also keeps Meta's ids (and so phone numbers) out of Redis keys. */
function digest(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 40);
}

export const jobIds = {
  inbound: (phoneNumberId: string, wamid: string) => `m-${digest(phoneNumberId, wamid)}`,
  status: (phoneNumberId: string, wamid: string, status: string) => `s-${digest(phoneNumberId, wamid, status)}`,
  /** an account-level webhook update (template status, quality/tier change): same content, same job */
  account: (wabaId: string, field: string, value: string) => `a-${digest(wabaId, field, value)}`,
  outbound: (messageId: string) => `o-${messageId}`,
  event: (deliveryId: string) => `e-${deliveryId}`,
  otpDeliver: (deliveryId: string) => `d-${deliveryId}`,
  otpTimeout: (deliveryId: string) => `t-${deliveryId}`,
  /** one job per http step execution (its Idempotency-Key) */
  flowCall: (callId: string) => `f-${callId}`,
};

export const jobOptions: Record<keyof typeof QUEUES, JobsOptions> = {
  inbound: {
    attempts: 20,
    backoff: { type: "exponential", delay: 500 },
    removeOnComplete: true,
    removeOnFail: { age: 14 * 24 * 3600 },
  },
  statuses: {
    // A status may arrive before the send call returned its wamid: it is retried (held) until the id is stored.
    attempts: 12,
    backoff: { type: "exponential", delay: 250 },
    removeOnComplete: true,
    removeOnFail: { age: 14 * 24 * 3600 },
  },
  outbound: {
    attempts: 8, // overridden from OUTBOUND_MAX_ATTEMPTS; delays come from the worker's backoff strategy
    backoff: { type: "cloud-api" },
    removeOnComplete: true,
    removeOnFail: { age: 14 * 24 * 3600 },
  },
  events: {
    // 2 s, 8 s, 32 s, ~2 min, ~9 min, ~34 min, then hourly (jittered): ~4 h in all; the delivery row is the log
    attempts: 10,
    backoff: { type: "event-delivery" },
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600 },
  },
  otp: {
    // an SMS/voice send that failed transiently: 1 s, 2 s, 4 s, 8 s; then the next channel (a code lives minutes)
    attempts: 5,
    backoff: { type: "exponential", delay: 1_000 },
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600 },
  },
  flowCalls: {
    // the business call's own retries are the step's (in the job); these cover resuming the flow after it answered
    // (PostgreSQL or Redis down): the answer is kept in the job, so a retried job does not call again
    attempts: 10,
    backoff: { type: "exponential", delay: 500 },
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600 },
  },
};
