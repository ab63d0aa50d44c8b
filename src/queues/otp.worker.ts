import { Worker, type Job, type Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { PrismaClient } from "../db/prisma";
import type { Logger } from "../observability/logger";
import type { OtpDeliveryPlanner } from "../otp/delivery.planner";
import type { VerificationService } from "../otp/verification.service";
import type { CodeSender } from "../providers/ports";
import { systemClock, type Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { QUEUES, type OtpJob } from "./jobs";
import { workerLockOptions } from "./locks";

/**
 * The OTP worker, queue "otp" (data: `{deliveryId}` only, never a code):
 * - `deliver`: sends one SMS/voice code. Skipped when the delivery is no longer queued (a timeout or a failure
 *   moved on) or the verification ended. The code is decrypted only here, for the provider call. Accepted →
 *   delivery `sent` (+ providerRef, `sent` event); transient failure → thrown, retried with the queue's backoff;
 *   permanent failure, or the last attempt → `fallBack` (next channel, or `failed`).
 * - `timeout`: a delivery still queued/sent when its tenant's deliveryTimeoutSeconds are up → `fallBack`
 *   (reason no_delivery). `fallBack` is a conditional update: with a failure webhook at the same time, once.
 * - `expire-sweep` (repeatable, every 30 s): pending verifications past their expiry become `expired`; deliveries
 *   whose jobs were lost in a crash are repaired.
 */
export interface OtpWorkerDeps {
  /** a worker connection (maxRetriesPerRequest: null) */
  connection: Redis;
  prefix: string;
  planner: OtpDeliveryPlanner;
  prisma: PrismaClient;
  keyring: Keyring;
  senders: { sms?: CodeSender; voice?: CodeSender };
  verifications: VerificationService;
  logger: Logger;
  concurrency?: number;
  clock?: Clock;
  /** the otp queue: when given, the repeatable `expire-sweep` is scheduled on it */
  queue?: Queue<OtpJob>;
  sweepEveryMs?: number;
  /** the brand said in SMS/voice texts when a tenant has no name */
  businessName?: string;
  /** WORKER_LOCK_MS (default: BullMQ's 30 s) */
  lockMs?: number;
}

export class OtpSendError extends Error {
  override readonly name = "OtpSendError";
}

export type OtpJobResult = "sent" | "fell-back" | "skipped" | "timed-out" | "swept";

export const EXPIRE_SWEEP_SCHEDULER = "expire-sweep";

export async function scheduleOtpSweep(queue: Queue<OtpJob>, everyMs = 30_000): Promise<void> {
  await queue.upsertJobScheduler(EXPIRE_SWEEP_SCHEDULER, { every: everyMs }, { name: "expire-sweep", data: {}, opts: { removeOnComplete: true, removeOnFail: 100 } });
}

export function createOtpWorker(deps: OtpWorkerDeps): Worker<OtpJob, OtpJobResult> {
  const { prisma, keyring, senders, planner, verifications } = deps;
  const clock = deps.clock ?? systemClock;
  const log = deps.logger.child({ component: "otp-worker" });

  async function deliver(job: Job<OtpJob>): Promise<OtpJobResult> {
    const deliveryId = job.data.deliveryId;
    if (!deliveryId) return "skipped";
    const d = await prisma.otpDelivery.findUnique({
      where: { id: deliveryId },
      include: { verification: { include: { tenant: { select: { name: true, settings: true } } } } },
    });
    if (!d || d.status !== "queued" || d.channel === "whatsapp") return "skipped";
    const v = d.verification;
    const now = clock.now();
    if (v.status !== "pending" || v.expiresAt <= now || !v.codeEnc) {
      await planner.supersede(d.id, "verification_ended");
      return "skipped";
    }
    const sender = senders[d.channel as "sms" | "voice"];
    if (!sender) {
      await planner.fallBack(d.id, "failed", "no_provider");
      return "fell-back";
    }
    // the daily spend cap on paid channels (a no-op when the planner already reserved this delivery's cost)
    if (!(await planner.admitPaid({ id: d.id, channel: d.channel as "sms" | "voice", verificationId: v.id, tenantId: v.tenantId, to: v.to, settings: v.tenant.settings }))) {
      log.warn({ deliveryId, verificationId: v.id, channel: d.channel }, "code refused by the daily fallback budget: falling back");
      return "fell-back";
    }
    const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const info = { deliveryId, verificationId: v.id, channel: d.channel, provider: sender.provider, attempt: job.attemptsMade + 1 };
    let result;
    try {
      result = await sender.send({
        to: v.to,
        code: keyring.decryptString("otp-code", v.codeEnc),
        locale: v.locale ?? "en_US",
        brand: v.tenant.name || deps.businessName || "",
        expiryMinutes: Math.max(1, Math.ceil((v.expiresAt.getTime() - now.getTime()) / 60_000)),
        reference: d.id,
      });
    } catch (err) {
      // an adapter bug or a network error it did not turn into a value: transient; never echo its text (it may
      // quote the request)
      result = { ok: false as const, transient: true, errorCode: "exception", message: err instanceof Error ? err.name : "error" };
    }
    if (result.ok) {
      await planner.markSent(d.id, result.providerRef);
      log.debug(info, "code accepted by the provider");
      return "sent";
    }
    if (result.transient && !final) {
      log.warn({ ...info, errorCode: result.errorCode }, "code send failed transiently: will retry");
      throw new OtpSendError(`${sender.provider} transient failure${result.errorCode ? ` (${result.errorCode})` : ""}`);
    }
    log.warn({ ...info, errorCode: result.errorCode, transient: result.transient }, "code send failed: falling back");
    await planner.fallBack(d.id, "failed", result.errorCode ?? (result.transient ? "transient_exhausted" : "permanent"));
    return "fell-back";
  }

  async function processJob(job: Job<OtpJob>): Promise<OtpJobResult> {
    switch (job.name) {
      case "deliver":
        return deliver(job);
      case "timeout":
        if (!job.data.deliveryId) return "skipped";
        return (await planner.fallBack(job.data.deliveryId, "no_delivery")) ? "timed-out" : "skipped";
      case "expire-sweep": {
        const expired = await verifications.expireDue();
        const repaired = await planner.sweep();
        if (expired || repaired) log.info({ expired, repaired }, "otp sweep");
        return "swept";
      }
      default:
        log.warn({ name: job.name }, "unknown otp job: dropped");
        return "skipped";
    }
  }

  const worker = new Worker<OtpJob, OtpJobResult>(QUEUES.otp, processJob, {
    connection: deps.connection,
    prefix: deps.prefix,
    concurrency: deps.concurrency ?? 16,
    ...workerLockOptions(deps.lockMs),
  });
  worker.on("error", (err) => log.error({ err: err.message }, "otp worker error"));
  if (deps.queue) {
    scheduleOtpSweep(deps.queue, deps.sweepEveryMs).catch((err) => log.error({ err: err.message }, "cannot schedule the otp sweep"));
  }
  return worker;
}
