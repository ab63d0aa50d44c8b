import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "../observability/logger";
import type { Keyring } from "../shared/crypto";
import { jobIds, jobOptions, type EncryptedJob } from "../queues/jobs";
import { envelopeSchema, extractUpdates } from "./envelope";
import { verifySignature } from "./verify-signature";
import type { Mailboxes } from "./mailbox";

/** What became of one webhook POST. The HTTP layer maps each kind to a status in one place. */
export type IngestOutcome =
  | { kind: "accepted"; messages: number; statuses: number; ignored: number }
  | { kind: "verification_failed" }
  | { kind: "invalid_json" }
  | { kind: "invalid_envelope"; message: string }
  | { kind: "enqueue_failed"; error: string };

export interface IngestDeps {
  appSecret: string;
  keyring: Keyring;
  redis: Redis;
  mailboxes: Mailboxes;
  inboundQueue: Queue<EncryptedJob>;
  statusQueue: Queue<EncryptedJob>;
  logger: Logger;
  now?: () => number;
}

/**
 * Raw bytes → signature → parse → one durable job per message and status → outcome.
 * Framework-free: the Express route and the benchmark call the same function. Nothing is deduplicated here
 * beyond BullMQ's job ids; the lasting gate is claimed by the worker (so a 503 never turns a redelivery into a
 * "duplicate").
 */
export function createIngest(deps: IngestDeps) {
  const now = deps.now ?? Date.now;
  return async function ingest(rawBody: Buffer, signature: string | string[] | undefined): Promise<IngestOutcome> {
    if (!verifySignature(rawBody, signature, deps.appSecret)) return { kind: "verification_failed" };

    let json: unknown;
    try {
      json = JSON.parse(rawBody.toString("utf8"));
    } catch {
      return { kind: "invalid_json" };
    }
    const parsed = envelopeSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return { kind: "invalid_envelope", message: `${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}` };
    }
    if (parsed.data.object !== "whatsapp_business_account") {
      deps.logger.warn({ object: parsed.data.object }, "webhook for another object type ignored");
      return { kind: "accepted", messages: 0, statuses: 0, ignored: 1 };
    }

    const receivedAt = now();
    const updates = extractUpdates(parsed.data, receivedAt);
    for (const m of updates.malformed) deps.logger.warn(m, "webhook element without an id ignored");
    for (const o of updates.other) deps.logger.info(o, "webhook update of another field");

    const inboundJobs = updates.messages.map((item) => {
      const jobId = jobIds.inbound(item.phoneNumberId, item.message.id);
      return {
        item,
        jobId,
        mailbox: deps.mailboxes.key(item.phoneNumberId, item.contactKey),
        job: { name: "message", data: { enc: deps.keyring.encrypt("job-data", JSON.stringify(item)) }, opts: { ...jobOptions.inbound, jobId } },
      };
    });
    const statusJobs = updates.statuses.map((item) => {
      const jobId = jobIds.status(item.phoneNumberId, item.status.id, item.status.status);
      return { name: "status", data: { enc: deps.keyring.encrypt("job-data", JSON.stringify(item)) }, opts: { ...jobOptions.statuses, jobId } };
    });

    try {
      if (inboundJobs.length > 0) {
        // Mailbox entries first: a worker must never see a later message of a contact before an earlier one.
        const multi = deps.redis.multi();
        deps.mailboxes.addAll(multi, inboundJobs.map((j) => ({ key: j.mailbox, jobId: j.jobId, order: j.item.order })));
        const results = await multi.exec();
        const failed = results?.find(([err]) => err);
        if (!results || failed) throw failed?.[0] ?? new Error("MULTI aborted");
      }
      await Promise.all([
        inboundJobs.length ? deps.inboundQueue.addBulk(inboundJobs.map((j) => j.job)) : null,
        statusJobs.length ? deps.statusQueue.addBulk(statusJobs) : null,
      ]);
    } catch (err) {
      return { kind: "enqueue_failed", error: err instanceof Error ? err.message : String(err) };
    }
    return { kind: "accepted", messages: inboundJobs.length, statuses: statusJobs.length, ignored: updates.other.length + updates.malformed.length };
  };
}

export type Ingest = ReturnType<typeof createIngest>;
