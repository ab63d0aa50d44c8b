import { UnrecoverableError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config/env";
import type { PrismaClient } from "../db/prisma";
import { sqlFor, type Sql } from "../db/sql";
import { sentAtOf, type AccountUpdateItem, type StatusItem } from "../ingest/envelope";
import { recordStatus, wamidLock, type ApplyOutcome, type StatusUpdate } from "../messaging/delivery-status";
import { maskPhone, type Logger } from "../observability/logger";
import { runWithRequestId } from "../observability/request-context";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import type { TenantDirectory } from "../tenants/tenant-directory";
import { QUEUES, type EncryptedJob } from "./jobs";
import { workerLockOptions } from "./locks";

/**
 * The status worker: one job per (wamid, status) webhook, data encrypted (`keyring.encrypt("job-data", …)`).
 * Each status is recorded and applied in one transaction (src/messaging/delivery-status.ts): the StatusEvent's
 * unique (tenant, wamid, status) is the lasting dedupe gate; the message row's timeline and status follow the
 * order-tolerant rules there.
 *
 * Held statuses: Meta can report a status before our send call has returned the wamid. Such a job throws
 * `StatusHeldError` (nothing is written; BullMQ retries it with the queue's backoff); on its final attempt the
 * status is stored unapplied instead, and the send worker applies it when it stores the wamid.
 */
export type StatusWorkerConfig = Pick<Config, "QUEUE_PREFIX" | "INBOUND_CONCURRENCY"> & Partial<Pick<Config, "WORKER_LOCK_MS">>;

export interface StatusWorkerDeps {
  prisma: PrismaClient;
  keyring: Keyring;
  tenants: TenantDirectory;
  config: StatusWorkerConfig;
  logger: Logger;
  clock: Clock;
  /** a worker connection (maxRetriesPerRequest: null) */
  connection: Redis;
  /** default: the SQL layer on the Prisma client's pool */
  sql?: Sql;
  /** default: INBOUND_CONCURRENCY (statuses are small, short transactions) */
  concurrency?: number;
  /**
   * Told after a status was applied to a message that carries a verificationId (a code message), with the row's
   * resulting status and the webhook's error code. A failing hook fails the job (the status itself is already
   * stored): the retry finds the status a duplicate and calls the hook again, so the hook must be idempotent.
   */
  onMessageStatus?: (messageId: string, status: string, errorCode?: number | string | null) => Promise<void>;
  /** account-level updates (job name "account"): src/tenants/account-updates.ts; must be idempotent (jobs retry) */
  onAccountUpdate?: (item: AccountUpdateItem) => Promise<string>;
}

export class StatusHeldError extends Error {
  override readonly name = "StatusHeldError";
  constructor() {
    super("no message has this wamid yet (the send call has not returned): status held");
  }
}

export type StatusJobResult = ApplyOutcome["kind"] | "unknown_tenant" | string;

/** Meta's timestamps are strings of Unix seconds; a status without a plausible one takes the time it was received. */
export function statusUpdateFrom(item: StatusItem): StatusUpdate {
  const error = item.status.errors?.[0];
  return {
    status: item.status.status,
    timestamp: sentAtOf(item.status.timestamp, item.receivedAt),
    errorCode: error?.code ?? null,
    errorTitle: error?.title ?? error?.message ?? null,
  };
}

export function createStatusWorker(deps: StatusWorkerDeps): Worker<EncryptedJob, StatusJobResult> {
  const { keyring, tenants, config, logger } = deps;
  const sql = deps.sql ?? sqlFor(deps.prisma);
  const log = logger.child({ component: "status-worker" });

  async function processJob(job: Job<EncryptedJob>): Promise<StatusJobResult> {
    let item: StatusItem | AccountUpdateItem;
    try {
      item = JSON.parse(keyring.decryptString("job-data", job.data.enc)) as StatusItem | AccountUpdateItem;
    } catch (err) {
      log.error({ jobId: job.id, err: err instanceof Error ? err.message : String(err) }, "status job cannot be decrypted: dropped");
      throw new UnrecoverableError("undecryptable status job");
    }
    // under the webhook's request id: every line logged while the status is applied carries it
    return runWithRequestId(item.requestId, () => processItem(job, item));
  }

  async function processItem(job: Job<EncryptedJob>, item: StatusItem | AccountUpdateItem): Promise<StatusJobResult> {
    if (item.kind === "account") {
      if (!deps.onAccountUpdate) {
        log.info({ field: item.field }, "account update with no handler: ignored");
        return "ignored";
      }
      return deps.onAccountUpdate(item);
    }
    const tenant = await tenants.byPhoneNumberId(item.phoneNumberId);
    if (tenant && item.wabaId) await tenants.noteWabaId(tenant, item.wabaId);
    const who = { wamid: item.status.id, status: item.status.status, get recipient() { return maskPhone(item.status.recipient_id); } };
    const debug = log.isLevelEnabled("debug");
    if (!tenant) {
      log.warn({ ...who, phoneNumberId: item.phoneNumberId }, "status for an unknown business number: ignored");
      return "unknown_tenant";
    }
    const update = statusUpdateFrom(item);
    const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const outcome = await sql.transaction((q) => recordStatus(q, tenant.id, item.status.id, update, { final, last: true }), wamidLock(tenant.id, item.status.id));
    switch (outcome.kind) {
      case "held":
        if (debug) log.debug({ ...who, attempt: job.attemptsMade + 1 }, "status before its wamid is known: held");
        throw new StatusHeldError();
      case "stored_unapplied":
        log.warn(who, "status for a wamid still unknown after the last attempt: stored unapplied");
        break;
      case "duplicate":
        if (debug) log.debug(who, "duplicate status ignored");
        break;
      case "applied":
        if (debug) log.debug({ ...who, messageId: outcome.messageId, messageStatus: outcome.status, errorCode: update.errorCode ?? undefined }, "status applied");
        break;
    }
    // code messages: tell the OTP layer (on a retry too, in case the hook failed after the status was stored)
    if (deps.onMessageStatus && (outcome.kind === "applied" || (outcome.kind === "duplicate" && job.attemptsMade > 0))) {
      let msg: { id: string; status: string; verificationId: string | null; errorCode: number | null } | undefined;
      if (outcome.kind === "applied") {
        msg = { id: outcome.messageId, status: outcome.status, verificationId: outcome.verificationId, errorCode: outcome.errorCode };
      } else {
        [msg] = await sql.query<{ id: string; status: string; verificationId: string | null; errorCode: number | null }>(
          `SELECT id::text AS id, status::text AS status, verification_id::text AS "verificationId", error_code AS "errorCode"
             FROM messages WHERE tenant_id = $1::uuid AND wamid = $2::text`,
          [tenant.id, item.status.id],
        );
      }
      if (msg?.verificationId) {
        try {
          await deps.onMessageStatus(msg.id, msg.status, update.errorCode ?? msg.errorCode);
        } catch (err) {
          log.error({ ...who, messageId: msg.id, err: err instanceof Error ? err.message : String(err) }, "message status hook failed: the job will retry");
          throw err;
        }
      }
    }
    return outcome.kind;
  }

  const worker = new Worker<EncryptedJob, StatusJobResult>(QUEUES.statuses, processJob, {
    connection: deps.connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: deps.concurrency ?? config.INBOUND_CONCURRENCY,
    ...workerLockOptions(config.WORKER_LOCK_MS),
  });
  worker.on("error", (err) => log.error({ err: err.message }, "status worker error"));
  return worker;
}
