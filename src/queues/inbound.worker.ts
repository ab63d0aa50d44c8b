import { DelayedError, Worker, type Job, type Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { InboundHandler } from "../conversation/inbound-handler";
import type { InboundItem } from "../ingest/envelope";
import type { Mailboxes } from "../ingest/mailbox";
import { withRequestId, type Logger } from "../observability/logger";
import { runWithRequestId } from "../observability/request-context";
import type { Keyring } from "../shared/crypto";
import { QUEUES, type EncryptedJob } from "./jobs";
import { workerLockOptions } from "./locks";

/** How long a mailbox entry may wait for its job to become visible before it is taken for an orphan. */
const ORPHAN_AFTER_MS = 60_000;
const WAIT_FOR_EARLIER_MS = 100;

export interface InboundWorkerDeps {
  connection: Redis;
  prefix: string;
  concurrency: number;
  queue: Queue<EncryptedJob>;
  mailboxes: Mailboxes;
  keyring: Keyring;
  handler: InboundHandler;
  logger: Logger;
  /** WORKER_LOCK_MS: a crashed worker's jobs run again within about twice this (default: BullMQ's 30 s) */
  lockMs?: number;
}

/**
 * Per-contact order without BullMQ Pro's groups. Intake put each message's job id in the contact's mailbox
 * (a sorted set, by arrival order) before writing the job. A worker that takes a job first handles every
 * earlier entry of that mailbox, oldest first, loading their jobs' data (they may still be waiting in the
 * queue), then its own. Each message is handled under a PostgreSQL advisory lock on the contact and claimed by
 * its unique wamid, so when the stolen message's own job runs later it is a no-op. Nothing is dropped: a
 * message's job stays in Redis until that job completes.
 */
export function createInboundWorker(deps: InboundWorkerDeps): Worker<EncryptedJob> {
  const decrypt = (job: { data: EncryptedJob }): InboundItem => JSON.parse(deps.keyring.decryptString("job-data", job.data.enc));

  async function process(job: Job<EncryptedJob>, token?: string): Promise<string> {
    const item = decrypt(job);
    // this job failed or was taken from a crashed worker before: a message it handled may lack its replies' jobs
    const retry = job.attemptsMade > 0 || (job.stalledCounter ?? 0) > 0;
    const mailbox = deps.mailboxes.key(item.phoneNumberId, item.contactKey);
    const earlier = await deps.mailboxes.upTo(mailbox, item.order);
    for (const entry of earlier) {
      if (entry.jobId === job.id) continue;
      const other = await deps.queue.getJob(entry.jobId);
      if (!other) {
        // Intake writes the mailbox before the job: give a job that is being written a moment to appear.
        if (Date.now() - Math.floor(entry.order / 1000) < ORPHAN_AFTER_MS) {
          await job.moveToDelayed(Date.now() + WAIT_FOR_EARLIER_MS, token);
          throw new DelayedError();
        }
        deps.logger.warn({ jobId: entry.jobId }, "mailbox entry without a job removed (its POST was answered 503)");
        await deps.mailboxes.remove(mailbox, entry.jobId);
        continue;
      }
      if (await other.isFailed()) {
        // A message that failed for good must not hold the contact's later messages back for ever.
        await deps.mailboxes.remove(mailbox, entry.jobId);
        continue;
      }
      await handle(decrypt(other), other.id, retry);
      await deps.mailboxes.remove(mailbox, entry.jobId);
    }
    const outcome = await handle(item, job.id, retry);
    await deps.mailboxes.remove(mailbox, job.id!);
    return outcome.kind;
  }

  /**
   * One message, under its webhook's request id: the lines logged while it is handled (by any logger) and the
   * outbound jobs of its replies carry it.
   */
  function handle(item: InboundItem, jobId: string | undefined, retry: boolean) {
    return runWithRequestId(item.requestId, async () => {
      const started = performance.now();
      const outcome = await deps.handler.handle(item, { retry });
      // ops: one line per handled message at info, with its webhook's request id (the same as that POST's access
      // line): the wamid and the outcome, never the number or the text
      if (deps.logger.isLevelEnabled("info")) {
        const ms = Math.round((performance.now() - started) * 100) / 100;
        withRequestId(deps.logger, item.requestId).info({ jobId, wamid: item.message.id, outcome: outcome.kind, ms, ...(retry ? { retry } : {}) }, "inbound message processed");
      }
      return outcome;
    });
  }

  const worker = new Worker<EncryptedJob>(QUEUES.inbound, process, {
    connection: deps.connection,
    prefix: deps.prefix,
    concurrency: deps.concurrency,
    ...workerLockOptions(deps.lockMs),
  });
  worker.on("failed", (job, err) => {
    let requestId: string | undefined;
    try {
      requestId = job ? decrypt(job).requestId : undefined;
    } catch {
      // undecryptable: logged without it
    }
    withRequestId(deps.logger, requestId).error({ jobId: job?.id, attempts: job?.attemptsMade, err: err.message }, "inbound job failed");
  });
  worker.on("error", (err) => deps.logger.error({ err: err.message }, "inbound worker error"));
  return worker;
}
