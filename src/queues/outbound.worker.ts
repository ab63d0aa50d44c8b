import { DelayedError, UnrecoverableError, Worker, type BackoffStrategy, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { Config } from "../config/env";
import { randomUUID } from "node:crypto";
import type { PrismaClient } from "../db/prisma";
import { retryOnConnectionLoss, sqlFor, type Sql } from "../db/sql";
import { applyHeldStatuses, wamidLock } from "../messaging/delivery-status";
import type { OutboundContent } from "../messaging/outbox";
import { withRequestId, type Logger } from "../observability/logger";
import { runWithRequestId } from "../observability/request-context";
import { acceptRequestId } from "../observability/request-id";
import { CloudApiClient, type SendFailure, type SendResult } from "../providers/whatsapp/cloud-api.client";
import { isPairRateError } from "../providers/whatsapp/errors";
import { buildSendBody, type SendBody } from "../providers/whatsapp/payload";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import type { TenantDirectory } from "../tenants/tenant-directory";
import { QUEUES, type OutboundJob } from "./jobs";
import { workerLockOptions } from "./locks";

/**
 * The send worker: one job per outbound message row (`{messageId}`, never text), at-least-once.
 *
 * For each job: load the row → skip if already final → wait (moveToDelayed + DelayedError) while an earlier
 * message to the same contact is not out yet, and until the recipient gap has passed → take a token from the
 * per-number limiter (else wait msBeforeNext) → record a `pending` SendAttempt and mark the row `sending` → call
 * the Cloud API → record the outcome:
 * - accepted: store the wamid, status `sent`, apply statuses that arrived before the wamid was known;
 * - transient: retry through the "cloud-api" backoff (full jitter, 4^X s for the pair rate, Retry-After honoured);
 *   after the last attempt the row is `failed` with Meta's code;
 * - permanent: the row is `failed` with Meta's code at once (UnrecoverableError);
 * - unknown (timeout, connection lost after writing): recorded as `unknown` and retried, so Meta may get the
 *   message twice; `countUnknownSends` counts such sends.
 * Pacing delays use wall time (BullMQ's); timestamps written to the database use the injected clock.
 */
export type OutboundWorkerConfig = Pick<
  Config,
  | "QUEUE_PREFIX"
  | "OUTBOUND_CONCURRENCY"
  | "OUTBOUND_RATE_PER_SECOND"
  | "OUTBOUND_RECIPIENT_GAP_MS"
  | "OUTBOUND_TIMEOUT_MS"
  | "GRAPH_API_BASE_URL"
  | "GRAPH_API_VERSION"
> &
  Partial<Pick<Config, "WORKER_LOCK_MS">>;

/** What `resolveContent` gets: the stored row, whose payload may hold placeholders for secret parameters. */
export interface OutboundMessageRecord {
  id: string;
  tenantId: string;
  contactId: string;
  type: string;
  payload: OutboundContent;
  /** set on a code message: `resolveContent` fills the code in from this verification */
  verificationId?: string | null;
}

export interface BackoffSettings {
  /** first ceiling of the full-jitter exponential backoff */
  baseMs: number;
  capMs: number;
  /** 131056 (pair rate): pairBaseMs × 4^X, X = earlier 131056 answers for this message */
  pairBaseMs: number;
  pairCapMs: number;
  /** a Retry-After longer than this is cut to it */
  maxRetryAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = {
  baseMs: 1_000,
  capMs: 60_000,
  pairBaseMs: 1_000,
  pairCapMs: 15 * 60_000,
  maxRetryAfterMs: 15 * 60_000,
};

export interface OutboundWorkerDeps {
  prisma: PrismaClient;
  keyring: Keyring;
  tenants: TenantDirectory;
  config: OutboundWorkerConfig;
  logger: Logger;
  clock: Clock;
  /** a worker connection (maxRetriesPerRequest: null); also used for the limiter and the recipient gap keys */
  connection: Redis;
  /** default: a CloudApiClient from the config, closed with the worker */
  client?: Pick<CloudApiClient, "sendMessage">;
  /** fills in secret parameters (an OTP code) at send time; default: the stored payload as is */
  resolveContent?: (message: OutboundMessageRecord) => Promise<OutboundContent>;
  /**
   * Told when a code message (one with a verificationId) is accepted (`sent`, or a later status applied from
   * held webhooks) or fails for good (`failed` with Meta's code). A failing hook fails the job; its retry finds
   * the row final and calls the hook again with the row's status (the hook must be idempotent).
   */
  onMessageStatus?: (messageId: string, status: string, errorCode?: number | string | null) => Promise<void>;
  backoff?: Partial<BackoffSettings>;
  /** default: the SQL layer on the Prisma client's pool */
  sql?: Sql;
  /** how long a message waits before looking again for an earlier message to the same contact */
  orderPollMs?: number;
}

/** A send that may succeed if tried again; carries what the backoff strategy needs. */
export class RetryableSendError extends Error {
  override readonly name = "RetryableSendError";
  constructor(
    readonly failure: SendFailure,
    /** for 131056: how many earlier 131056 answers this message got (the X of 4^X) */
    readonly pairRetries = 0,
  ) {
    super(`Cloud API ${failure.kind} failure${failure.code !== undefined ? ` (code ${failure.code})` : ""}${failure.httpStatus ? ` HTTP ${failure.httpStatus}` : ""}${failure.networkError ? ` ${failure.networkError}` : ""}`);
  }
}

/**
 * Thrown by `resolveContent` when a message must not go out any more (its verification was approved, expired or
 * canceled before the send): the row is recorded `failed` with this reason and the Cloud API is not called.
 */
export class VerificationEndedError extends Error {
  override readonly name = "VerificationEndedError";
  constructor(reason: string) {
    super(`not sent: ${reason}`);
  }
}

/**
 * settings.backoffStrategy for jobs with `backoff: {type: "cloud-api"}`: exponential with full jitter
 * (random in [0, min(cap, base·2^(n-1)))), 131056 → pairBase·4^X, and never sooner than a Retry-After.
 */
export function cloudApiBackoff(settings: Partial<BackoffSettings> = {}, random: () => number = Math.random): BackoffStrategy {
  const s = { ...DEFAULT_BACKOFF, ...settings };
  return (attemptsMade: number, _type?: string, err?: Error) => {
    let floor = 0;
    let exact: number | undefined;
    if (err instanceof RetryableSendError) {
      if (err.failure.retryAfterMs !== undefined) floor = Math.min(err.failure.retryAfterMs, s.maxRetryAfterMs);
      if (isPairRateError(err.failure.code)) exact = Math.min(s.pairBaseMs * 4 ** err.pairRetries, s.pairCapMs);
    }
    if (exact !== undefined) return Math.max(exact, floor);
    const ceiling = Math.min(s.capMs, s.baseMs * 2 ** Math.max(0, attemptsMade - 1));
    return Math.max(floor, Math.floor(random() * ceiling));
  };
}

const FINAL_STATUSES = new Set(["sent", "delivered", "read", "failed"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface LoadedRow {
  id: string;
  tenantId: string;
  contactId: string;
  direction: string;
  status: string;
  type: string;
  payload: unknown;
  verificationId: string | null;
  errorCode: number | null;
  phone_e164: string | null;
  wa_id: string | null;
  user_id: string | null;
  phone_number_id: string;
  /** an earlier outbound message to the same contact is not out yet */
  has_earlier: boolean;
}

/** The row, its recipient and business number, and whether an earlier message to the contact is still unsent. */
const LOAD_MESSAGE = {
  name: "outbound_load",
  text: `SELECT m.id::text AS id, m.tenant_id::text AS "tenantId", m.contact_id::text AS "contactId", m.direction::text AS direction,
       m.status::text AS status, m.type, m.payload, m.verification_id::text AS "verificationId", m.error_code AS "errorCode",
       c.phone_e164, c.wa_id, c.user_id, t.phone_number_id,
       EXISTS (SELECT 1 FROM messages e WHERE e.contact_id = m.contact_id AND e.direction = 'outbound'
                 AND e.status IN ('queued', 'sending') AND e.seq < m.seq) AS has_earlier
  FROM messages m JOIN contacts c ON c.id = m.contact_id JOIN tenants t ON t.id = m.tenant_id
 WHERE m.id = $1::uuid`,
};

const FAIL_MESSAGE = {
  name: "outbound_fail",
  text: `UPDATE messages SET status = 'failed', failed_at = $2::timestamptz, error_code = $3::int, error_title = $4::text, updated_at = $5::timestamptz
 WHERE id = $1::uuid AND status IN ('queued', 'sending')`,
};

/** Earlier `pending` attempts → `unknown`; attempt n+1 recorded `pending`; the row claimed (`sending`) if not final. */
const START_ATTEMPT = {
  name: "outbound_start_attempt",
  text: `WITH stale AS (
  UPDATE send_attempts SET outcome = 'unknown', finished_at = $3::timestamptz WHERE message_id = $1::uuid AND outcome = 'pending'
), n AS (
  SELECT count(*)::int AS n FROM send_attempts WHERE message_id = $1::uuid
), ins AS (
  INSERT INTO send_attempts (id, message_id, attempt, outcome, started_at)
  SELECT $2::uuid, $1::uuid, n.n + 1, 'pending', $3::timestamptz FROM n
  RETURNING attempt
), claimed AS (
  UPDATE messages SET status = 'sending', updated_at = $4::timestamptz WHERE id = $1::uuid AND status IN ('queued', 'sending') RETURNING id
)
SELECT ins.attempt, EXISTS (SELECT 1 FROM claimed) AS claimed FROM ins`,
};

/** Accepted: the attempt, the wamid and `sent` (or the wamid only, if a status got there first); are statuses held? */
const ACCEPTED = {
  name: "outbound_accepted",
  text: `WITH a AS (
  UPDATE send_attempts SET outcome = 'accepted', http_status = $3::int, finished_at = $4::timestamptz WHERE id = $2::uuid
), moved AS (
  UPDATE messages SET wamid = $5::text, status = 'sent', sent_at = $4::timestamptz, error_code = NULL, error_title = NULL, updated_at = $7::timestamptz
   WHERE id = $1::uuid AND status IN ('queued', 'sending') RETURNING id
), wamid_only AS (
  UPDATE messages SET wamid = $5::text, updated_at = $7::timestamptz
   WHERE id = $1::uuid AND wamid IS NULL AND status NOT IN ('queued', 'sending')
)
SELECT EXISTS (SELECT 1 FROM status_events WHERE tenant_id = $6::uuid AND wamid = $5::text AND applied = false) AS held`,
};

const FINISH_ATTEMPT = {
  name: "outbound_finish_attempt",
  text: `UPDATE send_attempts SET outcome = $2::"SendOutcome", http_status = $3::int, error_code = $4::int, finished_at = $5::timestamptz WHERE id = $1::uuid`,
};
const RELEASE_LUA = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

export function createOutboundWorker(deps: OutboundWorkerDeps): Worker<OutboundJob> {
  const { config, logger, clock, connection } = deps;
  const sql = deps.sql ?? sqlFor(deps.prisma);
  const log = logger.child({ component: "outbound-worker" });
  const ownClient = deps.client ? null : new CloudApiClient({ baseUrl: config.GRAPH_API_BASE_URL, version: config.GRAPH_API_VERSION, timeoutMs: config.OUTBOUND_TIMEOUT_MS });
  const client = deps.client ?? ownClient!;
  const resolveContent = deps.resolveContent ?? (async (m: OutboundMessageRecord) => m.payload);
  const gapMs = config.OUTBOUND_RECIPIENT_GAP_MS;
  const orderPollMs = deps.orderPollMs ?? Math.max(100, gapMs);
  const limiter = new RateLimiterRedis({
    storeClient: connection,
    keyPrefix: `${config.QUEUE_PREFIX}:rl:outbound`,
    points: config.OUTBOUND_RATE_PER_SECOND,
    duration: 1,
  });
  const gapKey = (contactId: string) => `${config.QUEUE_PREFIX}:out:last:${contactId}`;
  const lockKey = (messageId: string) => `${config.QUEUE_PREFIX}:out:lock:${messageId}`;
  // The job's BullMQ lock (WORKER_LOCK_MS, at least a call's timeout twice plus 5 s). The per-message lock below lasts
  // as long: it is taken after the job's lock was last renewed, so it lapses no later than the job's, and the retry
  // of a job whose worker crashed (SIGKILL) can send at once instead of waiting for a longer message lock.
  const jobLocks = workerLockOptions(config.WORKER_LOCK_MS, config.OUTBOUND_TIMEOUT_MS * 2 + 5_000);
  const messageLockMs = jobLocks.lockDuration ?? 30_000;
  // A send's answer is known only to this process until it is written: while PostgreSQL is unreachable the write is
  // retried (within the message lock, taken before the call) instead of failing the job, whose retry would send the
  // message again. Found by test/chaos/postgres-outage.test.ts.
  const recordBudgetMs = Math.max(1_000, messageLockMs - config.OUTBOUND_TIMEOUT_MS - 1_000);
  const record = <T>(fn: () => Promise<T>) => retryOnConnectionLoss(fn, recordBudgetMs);

  async function later(job: Job<OutboundJob>, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + Math.max(1, Math.ceil(ms)), token);
    throw new DelayedError();
  }

  async function fail(messageId: string, failure: { code?: number; title?: string }): Promise<void> {
    await sql.execute(FAIL_MESSAGE, [messageId, clock.now(), failure.code ?? null, failure.title?.slice(0, 500) ?? null, new Date()]);
  }

  async function notify(messageId: string, status: string, errorCode?: number | null): Promise<void> {
    if (!deps.onMessageStatus) return;
    try {
      await deps.onMessageStatus(messageId, status, errorCode);
    } catch (err) {
      log.error({ messageId, status, err: err instanceof Error ? err.message : String(err) }, "message status hook failed: the job will retry");
      throw err;
    }
  }

  async function processJob(job: Job<OutboundJob>, token?: string): Promise<string> {
    const { messageId } = job.data;
    const [row] = UUID.test(messageId) ? await sql.query<LoadedRow>(LOAD_MESSAGE, [messageId]) : [];
    const msg = row && {
      ...row,
      contact: { phoneE164: row.phone_e164, waId: row.wa_id, userId: row.user_id },
      tenant: { phoneNumberId: row.phone_number_id },
    };
    if (!msg || msg.direction !== "outbound") {
      log.warn({ messageId }, "outbound job for an unknown message: dropped");
      return "missing";
    }
    if (FINAL_STATUSES.has(msg.status)) {
      // a retry after a hook failure: tell the hook again (it is idempotent)
      if (msg.verificationId && job.attemptsMade > 0) await notify(msg.id, msg.status, msg.errorCode);
      return "already-done";
    }

    // 1. Order per recipient: nothing overtakes an earlier message to the same contact that is not out yet.
    // (looked up with the row: has_earlier)
    if (msg.has_earlier) return later(job, token, orderPollMs);

    // 2. Pacing per recipient: a gap after the previous send.
    if (gapMs > 0) {
      const last = Number(await connection.get(gapKey(msg.contactId)));
      const wait = last ? last + gapMs - Date.now() : 0;
      if (wait > 0) return later(job, token, wait);
    }

    // 3. Throughput per business number: this job waits, the queue does not.
    try {
      await limiter.consume(msg.tenant.phoneNumberId, 1);
    } catch (err) {
      if (err instanceof RateLimiterRes) return later(job, token, err.msBeforeNext + Math.floor(Math.random() * Math.min(50, err.msBeforeNext + 1)));
      throw err;
    }

    // 4. The body. A secret parameter is filled in only here; it never reaches the database, Redis or a log.
    const record: OutboundMessageRecord = {
      id: msg.id, tenantId: msg.tenantId, contactId: msg.contactId, type: msg.type, payload: msg.payload as unknown as OutboundContent, verificationId: msg.verificationId,
    };
    let content: OutboundContent;
    try {
      content = await resolveContent(record);
    } catch (err) {
      if (!(err instanceof VerificationEndedError)) throw err;
      await fail(msg.id, { title: err.message });
      log.info({ messageId, reason: err.message }, "code message not sent: its verification has ended");
      if (msg.verificationId) await notify(msg.id, "failed");
      throw new UnrecoverableError(err.message);
    }
    const built = buildSendBody(content, msg.contact);
    if (!built.ok) {
      await fail(msg.id, { title: built.reason });
      log.error({ messageId, reason: built.reason }, "outbound message cannot be sent");
      if (msg.verificationId) await notify(msg.id, "failed");
      throw new UnrecoverableError(built.reason);
    }
    const accessToken = await deps.tenants.accessToken(msg.tenantId);

    // 5. One call per message at a time, even if a stray second job for the same row exists.
    const lock = await acquire(messageId);
    if (!lock) return later(job, token, orderPollMs);
    try {
      return await sendOnce(job, msg, built.body, accessToken);
    } finally {
      await release(messageId, lock);
    }
  }

  async function acquire(messageId: string): Promise<string | null> {
    const value = `${process.pid}-${Math.random().toString(36).slice(2)}`;
    const ok = await connection.set(lockKey(messageId), value, "PX", messageLockMs, "NX");
    return ok === "OK" ? value : null;
  }

  async function release(messageId: string, value: string): Promise<void> {
    await connection.eval(RELEASE_LUA, 1, lockKey(messageId), value).catch(() => undefined);
  }

  async function sendOnce(
    job: Job<OutboundJob>,
    msg: { id: string; tenantId: string; contactId: string; verificationId: string | null; tenant: { phoneNumberId: string } },
    body: SendBody,
    accessToken: string,
  ): Promise<string> {
    const messageId = msg.id;
    // Record the attempt before the call; a crash leaves it `pending` (= outcome unknown).
    // one statement, so atomic: an earlier `pending` attempt becomes `unknown`, this one is recorded, the row claimed
    const attemptId = randomUUID();
    const [started] = await sql.query<{ attempt: number; claimed: boolean }>(START_ATTEMPT, [messageId, attemptId, clock.now(), new Date()]);
    if (!started?.claimed) return "already-done";
    const attempt = { id: attemptId, attempt: started.attempt };

    // the request id of the webhook or API call behind this message goes to Meta (the sandbox records it)
    const requestId = acceptRequestId(job.data.requestId);
    const result: SendResult = await client.sendMessage(msg.tenant.phoneNumberId, accessToken, body, requestId ? { requestId } : undefined);
    if (gapMs > 0) await connection.set(gapKey(msg.contactId), String(Date.now()), "PX", gapMs + 1_000);
    const now = clock.now();
    const isLast = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const base = { messageId, attempt: attempt.attempt, tenantId: msg.tenantId };

    if (result.ok) {
      const held = await record(() =>
        sql.transaction(async (q) => {
          const [r] = await q.query<{ held: boolean }>(ACCEPTED, [messageId, attempt.id, result.httpStatus, now, result.wamid, msg.tenantId, new Date()]);
          return r?.held ? applyHeldStatuses(q, msg.tenantId, result.wamid) : 0;
        }, wamidLock(msg.tenantId, result.wamid)),
      );
      if (log.isLevelEnabled("debug")) log.debug({ ...base, heldStatuses: held || undefined }, "message accepted by the Cloud API");
      if (msg.verificationId && deps.onMessageStatus) {
        await notify(messageId, "sent");
        if (held) {
          const [now] = await sql.query<{ status: string; errorCode: number | null }>(`SELECT status::text AS status, error_code AS "errorCode" FROM messages WHERE id = $1::uuid`, [messageId]);
          if (now && now.status !== "sent") await notify(messageId, now.status, now.errorCode);
        }
      }
      return "sent";
    }

    const outcome = result.kind === "permanent" ? "permanent_error" : result.kind === "transient" ? "transient_error" : "unknown";
    await record(() => sql.execute(FINISH_ATTEMPT, [attempt.id, outcome, result.httpStatus ?? null, result.code ?? null, now]));
    // Meta's title/details may quote a parameter (a phone number): only the code goes to the log
    const info = { ...base, kind: result.kind, code: result.code, httpStatus: result.httpStatus, networkError: result.networkError };

    if (result.kind === "permanent") {
      await record(() => fail(messageId, result));
      if (msg.verificationId) await notify(messageId, "failed", result.code);
      log.warn(info, "Cloud API refused the message: failed");
      throw new UnrecoverableError(`Cloud API permanent error${result.code !== undefined ? ` ${result.code}` : ""}`);
    }
    if (isLast) {
      await fail(messageId, result.kind === "unknown" ? { code: result.code, title: `send outcome unknown after ${attempt.attempt} attempts: ${result.title ?? ""}`.trim() } : result);
      if (msg.verificationId) await notify(messageId, "failed", result.code);
      log.error(info, "Cloud API send failed on its last attempt");
      throw new UnrecoverableError(`Cloud API ${result.kind} error on the last attempt`);
    }
    if (result.kind === "transient") {
      // not in flight any more: back to queued (later messages to this contact keep waiting behind it)
      await sql.execute(`UPDATE messages SET status = 'queued', updated_at = $2::timestamptz WHERE id = $1::uuid AND status = 'sending'`, [messageId, new Date()]);
    }
    const pairRetries = isPairRateError(result.code)
      ? Number((await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM send_attempts WHERE message_id = $1::uuid AND error_code = $2::int`, [messageId, result.code ?? null]))[0]?.n ?? 0) - 1
      : 0;
    log.warn(info, result.kind === "unknown" ? "Cloud API send outcome unknown: will retry (may repeat)" : "Cloud API transient error: will retry");
    throw new RetryableSendError(result, pairRetries);
  }

  // every line logged for the job carries the request id of the webhook or API call behind the message
  const runJob = (job: Job<OutboundJob>, token?: string) => runWithRequestId(acceptRequestId(job.data.requestId), () => processJob(job, token));
  const worker = new Worker<OutboundJob>(QUEUES.outbound, runJob, {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.OUTBOUND_CONCURRENCY,
    ...jobLocks,
    settings: { backoffStrategy: cloudApiBackoff(deps.backoff) },
  });
  worker.on("failed", (job, err) => {
    if (err instanceof DelayedError) return;
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      withRequestId(log, acceptRequestId(job.data.requestId)).error({ messageId: job.data.messageId, err: err.message }, "outbound job failed for good");
    }
  });
  worker.on("error", (err) => log.error({ err: err.message }, "outbound worker error"));
  if (ownClient) worker.on("closed", () => ownClient.close());
  return worker;
}

/**
 * Sends whose outcome we do not know (timeouts, connections lost after the request left, and `pending` attempts
 * left by a crash older than `pendingOlderThanMs`), and how many of those messages were sent again afterwards and
 * accepted: Meta may have delivered such a message twice.
 */
export async function countUnknownSends(
  prisma: PrismaClient,
  opts: { since?: Date; tenantId?: string; pendingOlderThanMs?: number; now?: Date } = {},
): Promise<{ unknown: number; possiblyRepeated: number }> {
  const now = opts.now ?? new Date();
  const pendingBefore = new Date(now.getTime() - (opts.pendingOlderThanMs ?? 5 * 60_000));
  const scope = {
    ...(opts.since ? { startedAt: { gte: opts.since } } : {}),
    ...(opts.tenantId ? { message: { tenantId: opts.tenantId } } : {}),
  };
  const unknownWhere = {
    ...scope,
    OR: [{ outcome: "unknown" as const }, { outcome: "pending" as const, startedAt: { lt: pendingBefore, ...(opts.since ? { gte: opts.since } : {}) } }],
  };
  const unknown = await prisma.sendAttempt.count({ where: unknownWhere });
  const unknownRows = await prisma.sendAttempt.findMany({ where: { ...scope, outcome: "unknown" }, select: { messageId: true, attempt: true } });
  let possiblyRepeated = 0;
  for (const row of unknownRows) {
    const acceptedLater = await prisma.sendAttempt.count({ where: { messageId: row.messageId, outcome: "accepted", attempt: { gt: row.attempt } } });
    if (acceptedLater > 0) possiblyRepeated++;
  }
  return { unknown, possiblyRepeated };
}
