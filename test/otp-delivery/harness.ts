import { Queue, type Worker } from "bullmq";
import type { DeliveryPlanner, PostCommit } from "../../src/otp/delivery";
import { OtpDeliveryPlanner } from "../../src/otp/delivery.planner";
import { Limits } from "../../src/otp/limits";
import { OtpEvents } from "../../src/otp/otp-events";
import { VerificationService } from "../../src/otp/verification.service";
import { RecordingCodeSender } from "../../src/providers/sandbox/recording-sender";
import { createInboundWorker } from "../../src/queues/inbound.worker";
import { QUEUES, type OtpJob } from "../../src/queues/jobs";
import { createOtpWorker } from "../../src/queues/otp.worker";
import { createOutboundWorker } from "../../src/queues/outbound.worker";
import { workerConnection } from "../../src/queues/redis";
import { createStatusWorker } from "../../src/queues/status.worker";
import { startTestSystem, type TestSystem } from "../helpers/system";

export interface OtpSystem {
  sys: TestSystem;
  planner: OtpDeliveryPlanner;
  verifications: VerificationService;
  otpQueue: Queue<OtpJob>;
  sms: RecordingCodeSender;
  voice: RecordingCodeSender;
  who: { tenantId: string; actor: string };
  outboundWorker: Worker;
  /** "<messageId>:<status>" for every call of the status worker's hook */
  statusHookCalls: string[];
  otpWorker?: Worker;
  /** runs `fn` with the after-commit dispatch held (nothing reaches a queue), then dispatches what was held */
  holdDispatch<T>(fn: () => Promise<T>): Promise<T>;
  setOtpSettings(otp: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/**
 * The bot with the sandbox as Meta, wired the way the composition root will wire the OTP layer: the send worker
 * fills codes in through the planner and reports code-message statuses to it, the status worker too, and the otp
 * worker sends SMS/voice through recording senders. `otpWorker: false` leaves `deliver`/`timeout` jobs in the
 * queue (tests then run the planner's steps by hand).
 */
/** `statusHookFailures`: the status worker's hook throws on its first n calls for a status other than `sent` */
export async function startOtpSystem(opts: { otpWorker?: boolean; statusHookFailures?: number; sweepEveryMs?: number } = {}): Promise<OtpSystem> {
  const sys = await startTestSystem({ workers: false, env: { OUTBOUND_RECIPIENT_GAP_MS: "0" }, sandbox: { statusDelaysMs: { sent: 10, delivered: 30, read: 60 } } });
  const { core, config } = sys;
  const logger = core.logger;
  // this SMS provider "has status callbacks", so a no-delivery timeout is armed for it
  const sms = new RecordingCodeSender("sms", { reportsDelivery: true });
  const voice = new RecordingCodeSender("voice");
  const otpQueue = new Queue<OtpJob>(QUEUES.otp, { connection: core.redis, prefix: config.QUEUE_PREFIX });
  const events = new OtpEvents();
  const planner = new OtpDeliveryPlanner({
    prisma: core.prisma,
    keyring: core.keyring,
    outbox: core.outbox,
    otpQueue,
    senders: { sms, voice },
    events,
    eventDispatch: async () => undefined,
    config,
    clock: core.clock,
    logger,
  });
  let held: PostCommit[] | null = null;
  const gated: DeliveryPlanner = {
    available: (c) => planner.available(c),
    plan: (tx, post, input) => planner.plan(tx, post, input),
    afterCommit: async (post) => {
      if (held) held.push(post);
      else await planner.afterCommit(post);
    },
  };
  const verifications = new VerificationService({
    prisma: core.prisma,
    keyring: core.keyring,
    limits: new Limits(core.redis, config.QUEUE_PREFIX),
    clock: core.clock,
    logger,
    delivery: gated,
    events,
  });
  let hookFailures = opts.statusHookFailures ?? 0;
  const statusHookCalls: string[] = [];
  const connections = [0, 1, 2, 3].map(() => workerConnection(config.REDIS_URL));
  const workers: Worker[] = [
    createInboundWorker({ connection: connections[0]!, prefix: config.QUEUE_PREFIX, concurrency: 4, queue: core.queues.inbound, mailboxes: core.mailboxes, keyring: core.keyring, handler: core.inboundHandler, logger }),
    createOutboundWorker({
      prisma: core.prisma, keyring: core.keyring, tenants: core.tenants, config, clock: core.clock, logger, connection: connections[1]!,
      backoff: { baseMs: 20, capMs: 200, pairBaseMs: 20, pairCapMs: 400, maxRetryAfterMs: 1_500 },
      resolveContent: planner.resolveContent,
      onMessageStatus: planner.onMessageStatus,
    }),
    createStatusWorker({
      prisma: core.prisma, keyring: core.keyring, tenants: core.tenants, config, clock: core.clock, logger, connection: connections[2]!,
      onMessageStatus: async (...args) => {
        statusHookCalls.push(`${args[0]}:${args[1]}`);
        if (args[1] !== "sent" && hookFailures-- > 0) throw new Error("hook down (test)");
        return planner.onMessageStatus(...args);
      },
    }),
  ];
  let otpWorker: Worker | undefined;
  if (opts.otpWorker !== false) {
    workers.push(otpWorker = createOtpWorker({ connection: connections[3]!, prefix: config.QUEUE_PREFIX, planner, prisma: core.prisma, keyring: core.keyring, senders: { sms, voice }, verifications, logger, concurrency: 4,
      ...(opts.sweepEveryMs ? { queue: otpQueue, sweepEveryMs: opts.sweepEveryMs } : {}),
    }));
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  const who = { tenantId: sys.tenantId, actor: "api-key:test" };
  return {
    sys, planner, verifications, otpQueue, sms, voice, who, outboundWorker: workers[1]!, otpWorker, statusHookCalls,
    async holdDispatch(fn) {
      held = [];
      try {
        return await fn();
      } finally {
        const posts = held;
        held = null;
        for (const p of posts) await planner.afterCommit(p);
      }
    },
    async setOtpSettings(otp) {
      const t = await core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
      const settings = (t.settings ?? {}) as Record<string, unknown>;
      await core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { settings: JSON.parse(JSON.stringify({ ...settings, otp: { ...((settings.otp as object) ?? {}), ...otp } })) } });
    },
    async close() {
      await Promise.allSettled(workers.map((w) => w.close()));
      await otpQueue.obliterate({ force: true }).catch(() => undefined);
      await otpQueue.close();
      await Promise.allSettled(connections.map((c) => c.quit()));
      await sys.close();
    },
  };
}
