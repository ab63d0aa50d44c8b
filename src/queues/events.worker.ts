import axios, { type AxiosInstance } from "axios";
import { UnrecoverableError, Worker, type BackoffStrategy, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config/env";
import type { PrismaClient } from "../db/prisma";
import { callbackSecret } from "../events/callback";
import { signEvent, SIGNATURE_HEADER } from "../events/signature";
import type { EventEnvelope } from "../events/types";
import type { Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { BlockedAddressError, checkTargetUrl, isBlockedAddressError, safeRequestOptions } from "../shared/safe-http";
import { readSettings } from "../tenants/settings";
import { QUEUES, type EventJob } from "./jobs";
import { workerLockOptions } from "./locks";

/**
 * The event delivery worker: one job per EventDelivery row (`{deliveryId}`), at-least-once.
 *
 * For each job: load the row → skip unless `pending` → read the tenant's current callback (a URL changed since the
 * event was published is used, and recorded on the row; a URL removed ends the row as `failed`) → decrypt the
 * secret → POST the JSON body with `X-Wabot-Signature` over exactly the bytes sent (5 s timeout, redirects not
 * followed) → record the attempt:
 * - 2xx: `delivered`, `deliveredAt`;
 * - anything else (3xx, 4xx, 5xx, timeout, connection error): `attempts`, `lastStatus`, `lastError` and a retry
 *   through the "event-delivery" backoff (exponential with jitter; Retry-After honoured up to the cap). A 4xx is
 *   retried too (the business may be deploying); every try counts. After the last attempt the row is `failed`.
 * - The URL obeys src/shared/safe-http.ts, as flow `http` steps do: https to public addresses only, judged again
 *   here (a URL stored before the rule, or under development mode) and at connect time on the resolved address;
 *   plain http to loopback only in development mode (`dev`). The tenant-visible `lastError` is `HTTP <status>`,
 *   `timeout` or `network error`, nothing more: a refused connection, a reset, a DNS failure and an address the
 *   rule blocks all read `network error` (the delivery log is no port scanner). The detail goes to the operator log.
 * Rows are kept (delivered and failed): they are the delivery log. The secret is never logged or stored in clear.
 */
export type EventsWorkerConfig = Pick<Config, "QUEUE_PREFIX"> & Partial<Pick<Config, "WORKER_LOCK_MS">>;

export interface EventBackoffSettings {
  /** delay before the 2nd attempt */
  baseMs: number;
  /** growth per attempt */
  factor: number;
  capMs: number;
  /** fraction of each delay that is random: the delay is in [d·(1-jitter), d] */
  jitter: number;
  /** a Retry-After longer than this is cut to it */
  maxRetryAfterMs: number;
}

export const DEFAULT_EVENT_BACKOFF: EventBackoffSettings = {
  baseMs: 2_000,
  factor: 4,
  capMs: 60 * 60_000,
  jitter: 0.2,
  maxRetryAfterMs: 60 * 60_000,
};

export interface EventsWorkerDeps {
  prisma: PrismaClient;
  keyring: Keyring;
  /** a worker connection (maxRetriesPerRequest: null) */
  connection: Redis;
  config: EventsWorkerConfig;
  logger: Logger;
  clock: Clock;
  /** default: a plain axios instance; timeouts, redirects and status handling are set per request */
  http?: AxiosInstance;
  backoff?: Partial<EventBackoffSettings>;
  /** default 5 000 ms */
  timeoutMs?: number;
  /** default 16 */
  concurrency?: number;
  /** development mode (config isDevMode): callbacks may be plain http to 127.0.0.1, localhost or [::1] */
  dev?: boolean;
}

/** A failed delivery attempt that will be tried again. */
export class EventDeliveryError extends Error {
  override readonly name = "EventDeliveryError";
  constructor(
    message: string,
    readonly httpStatus?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** settings.backoffStrategy for `backoff: {type: "event-delivery"}`: min(cap, base·factor^(n-1)) minus up to `jitter` of it. */
export function eventBackoff(settings: Partial<EventBackoffSettings> = {}, random: () => number = Math.random): BackoffStrategy {
  const s = { ...DEFAULT_EVENT_BACKOFF, ...settings };
  return (attemptsMade: number, _type?: string, err?: Error) => {
    const exp = Math.min(s.capMs, s.baseMs * s.factor ** Math.max(0, attemptsMade - 1));
    const delay = Math.floor(exp * (1 - s.jitter * random()));
    const floor = err instanceof EventDeliveryError && err.retryAfterMs !== undefined ? Math.min(err.retryAfterMs, s.maxRetryAfterMs) : 0;
    return Math.max(delay, floor);
  };
}

/** Retry-After as seconds or an HTTP date; undefined if absent or unreadable. */
export function parseRetryAfter(value: unknown, nowMs: number): number | undefined {
  if (typeof value !== "string" || value.trim() === "") return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** The body as sent: the stored payload in the documented key order. */
export function eventBody(payload: EventEnvelope): string {
  const { id, type, createdAt, tenantId, data } = payload;
  return JSON.stringify({ id, type, createdAt, tenantId, data });
}

/** What the tenant sees of a failed connection: `timeout` or `network error`, never the socket's error code. */
function describeNetworkError(err: unknown): string {
  if (!isBlockedAddressError(err) && axios.isAxiosError(err) && (err.code === "ECONNABORTED" || err.code === "ETIMEDOUT")) return "timeout";
  return "network error";
}

/** The operator log's detail of a failed connection (never shown to the tenant). */
function networkErrorDetail(err: unknown): string {
  if (isBlockedAddressError(err)) return "blocked: not a public address";
  return (axios.isAxiosError(err) ? err.code : undefined) ?? (err instanceof Error ? err.name : "unknown");
}

export function createEventsWorker(deps: EventsWorkerDeps): Worker<EventJob> {
  const { prisma, keyring, config, logger, clock, connection } = deps;
  const log = logger.child({ component: "events-worker" });
  const http = deps.http ?? axios.create();
  const timeoutMs = deps.timeoutMs ?? 5_000;
  const dev = deps.dev === true;
  const guard = safeRequestOptions({ dev });

  async function processJob(job: Job<EventJob>): Promise<string> {
    const { deliveryId } = job.data;
    const row = await prisma.eventDelivery.findUnique({ where: { id: deliveryId } });
    if (!row) {
      log.warn({ deliveryId }, "event job for an unknown delivery: dropped");
      return "missing";
    }
    if (row.status !== "pending") return "already-done";
    const base = { deliveryId, tenantId: row.tenantId, type: row.type };
    const isLast = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);

    const tenant = await prisma.tenant.findUnique({ where: { id: row.tenantId }, select: { settings: true } });
    const url = tenant ? readSettings(tenant.settings).events.url : undefined;
    const secret = tenant ? callbackSecret(keyring, tenant.settings) : null;
    if (!url || !secret) {
      await prisma.eventDelivery.updateMany({
        where: { id: deliveryId, status: "pending" },
        data: { status: "failed", lastError: !url ? "callback URL removed" : "no signing secret" },
      });
      log.warn(base, "event not delivered: the tenant has no callback any more");
      throw new UnrecoverableError("no callback configured");
    }

    const body = eventBody(row.payload as unknown as EventEnvelope);
    const signature = signEvent(secret, body, Math.floor(clock.now().getTime() / 1000));
    let status: number | undefined;
    let error: string | undefined;
    let retryAfterMs: number | undefined;
    let detail: string | undefined;
    const target = checkTargetUrl(url, { dev });
    try {
      // a URL the rule refuses is never contacted, and fails exactly as an unreachable host does
      if (!target.ok) throw new BlockedAddressError(target.reason);
      const res = await http.request({
        method: "POST",
        url,
        data: body,
        headers: {
          "Content-Type": "application/json",
          "User-Agent": "wabot-events/1",
          "X-Wabot-Event-Id": row.id,
          "X-Wabot-Event-Type": row.type,
          [SIGNATURE_HEADER]: signature,
        },
        timeout: timeoutMs,
        ...guard,
        maxContentLength: 64 * 1024,
        responseType: "text",
        transformRequest: [(d: unknown) => d],
        transformResponse: [(d: unknown) => d],
        validateStatus: () => true,
      });
      status = res.status;
      if (status < 200 || status >= 300) {
        error = `HTTP ${status}`;
        if (status === 429 || status === 503) retryAfterMs = parseRetryAfter(res.headers["retry-after"], Date.now());
      }
    } catch (err) {
      error = describeNetworkError(err);
      detail = networkErrorDetail(err);
    }

    const now = clock.now();
    if (error === undefined) {
      await prisma.eventDelivery.updateMany({
        where: { id: deliveryId, status: "pending" },
        data: { status: "delivered", deliveredAt: now, attempts: { increment: 1 }, lastStatus: status ?? null, lastError: null, url },
      });
      log.debug({ ...base, attempt: job.attemptsMade + 1, httpStatus: status }, "event delivered");
      return "delivered";
    }
    await prisma.eventDelivery.updateMany({
      where: { id: deliveryId, status: "pending" },
      data: { status: isLast ? "failed" : "pending", attempts: { increment: 1 }, lastStatus: status ?? null, lastError: error, url },
    });
    const info = { ...base, attempt: job.attemptsMade + 1, httpStatus: status, error, ...(detail ? { detail } : {}) };
    if (isLast) {
      log.error(info, "event delivery failed on its last attempt");
      throw new UnrecoverableError(`event delivery failed: ${error}`);
    }
    log.warn(info, "event delivery failed: will retry");
    throw new EventDeliveryError(`event delivery failed: ${error}`, status, retryAfterMs);
  }

  const worker = new Worker<EventJob>(QUEUES.events, processJob, {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: deps.concurrency ?? 16,
    ...workerLockOptions(config.WORKER_LOCK_MS, timeoutMs * 2 + 5_000),
    settings: { backoffStrategy: eventBackoff(deps.backoff) },
  });
  worker.on("error", (err) => log.error({ err: err.message }, "events worker error"));
  return worker;
}
