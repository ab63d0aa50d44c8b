import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "../observability/logger";
import type { Keyring } from "../shared/crypto";
import { jobIds, jobOptions, type EncryptedJob } from "../queues/jobs";
import { envelopeSchema, extractUpdates, parseWebhookJson } from "./envelope";
import { verifySignature } from "./verify-signature";
import { scopeAllows, type SecretScope, type SecretScopes, type WebhookSecrets } from "./webhook-secrets";
import type { Mailboxes } from "./mailbox";
import { HandOff } from "./hand-off";

/** What became of one webhook POST. The HTTP layer maps each kind to a status in one place. */
export type IngestOutcome =
  | { kind: "accepted"; messages: number; statuses: number; accountUpdates?: number; ignored: number }
  | { kind: "verification_failed" }
  | { kind: "invalid_json" }
  | { kind: "invalid_envelope"; message: string }
  | { kind: "enqueue_failed"; error: string };

export interface IngestDeps {
  appSecret: string;
  /** tenants whose numbers belong to another Meta app, with that app's secret (src/ingest/webhook-secrets.ts) */
  secrets?: Pick<WebhookSecrets, "scopes">;
  keyring: Keyring;
  redis: Redis;
  mailboxes: Mailboxes;
  inboundQueue: Queue<EncryptedJob>;
  statusQueue: Queue<EncryptedJob>;
  logger: Logger;
  now?: () => number;
  /**
   * Coalesce concurrent POSTs' Redis writes into one pipeline (hand-off.ts; default true). false: each POST writes
   * its mailbox MULTI, then its addBulk calls, on its own (kept for the benchmark's before/after).
   */
  batch?: boolean;
}

/**
 * Raw bytes → signature → parse → one durable job per message and status → outcome.
 * Framework-free: the Express route and the benchmark call the same function. Nothing is deduplicated here
 * beyond BullMQ's job ids; the lasting gate is claimed by the worker (so a 503 never turns a redelivery into a
 * "duplicate").
 */
export function createIngest(deps: IngestDeps) {
  const now = deps.now ?? Date.now;
  const handOff = deps.batch === false ? null : new HandOff(deps.redis, deps.mailboxes, deps.inboundQueue, deps.statusQueue);
  /**
   * `opts.requestId`: the webhook request's id (X-Request-Id), put in every job's (encrypted) data so the workers
   * log it and the replies' sends carry it to the Cloud API.
   */
  return async function ingest(rawBody: Buffer, signature: string | string[] | undefined, opts: { requestId?: string } = {}): Promise<IngestOutcome> {
    let scopes: SecretScopes | null = null;
    let scope: SecretScope | null = null;
    if (deps.secrets) {
      try {
        scopes = await deps.secrets.scopes();
      } catch (err) {
        return { kind: "enqueue_failed", error: `the tenants' app secrets could not be read: ${err instanceof Error ? err.message : String(err)}` };
      }
      scope = [scopes.deployment, ...scopes.tenants].find((s) => verifySignature(rawBody, signature, s.secret)) ?? null;
      if (!scope) return { kind: "verification_failed" };
    } else if (!verifySignature(rawBody, signature, deps.appSecret)) return { kind: "verification_failed" };

    let json: unknown;
    try {
      json = parseWebhookJson(rawBody.toString("utf8"));
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
    if (scopes && scope && (scope.numbers !== null || scopes.ownNumbers.size > 0)) {
      // a secret speaks only for its own numbers: updates for others' are dropped (and logged), never queued
      const [s, all] = [scope, scopes];
      const before = updates.messages.length + updates.statuses.length + updates.account.length;
      updates.messages = updates.messages.filter((i) => scopeAllows(s, all, i.phoneNumberId));
      updates.statuses = updates.statuses.filter((i) => scopeAllows(s, all, i.phoneNumberId));
      if (s.wabaIds) updates.account = updates.account.filter((a) => s.wabaIds!.has(a.wabaId));
      const dropped = before - updates.messages.length - updates.statuses.length - updates.account.length;
      if (dropped > 0) deps.logger.warn({ dropped, ownSecret: s.numbers !== null }, "webhook updates for numbers this app secret does not speak for: dropped");
    }
    for (const m of updates.malformed) deps.logger.warn(m, "webhook element without an id ignored");
    for (const o of updates.other) deps.logger.info(o, "webhook update of another field");
    if (opts.requestId) {
      for (const item of [...updates.messages, ...updates.statuses, ...updates.account]) item.requestId = opts.requestId;
    }

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
    // account updates (template statuses, quality and tier changes) ride the status queue under their own job name
    for (const item of updates.account) {
      const jobId = jobIds.account(item.wabaId, item.field, JSON.stringify(item.value));
      statusJobs.push({ name: "account", data: { enc: deps.keyring.encrypt("job-data", JSON.stringify(item)) }, opts: { ...jobOptions.statuses, jobId } });
    }

    try {
      if (handOff) {
        await handOff.write({ mailbox: inboundJobs.map((j) => ({ key: j.mailbox, jobId: j.jobId, order: j.item.order })), inbound: inboundJobs.map((j) => j.job), statuses: statusJobs });
      } else {
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
      }
    } catch (err) {
      return { kind: "enqueue_failed", error: err instanceof Error ? err.message : String(err) };
    }
    return { kind: "accepted", messages: inboundJobs.length, statuses: statusJobs.length - updates.account.length, accountUpdates: updates.account.length, ignored: updates.other.length + updates.malformed.length };
  };
}

export type Ingest = ReturnType<typeof createIngest>;
