import { Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { performCall, resumeFlowCall, stillWaiting, type FlowCallDeps, type FlowCalls } from "../flows/flow-call";
import { QUEUES, type EncryptedJob } from "./jobs";
import { workerLockOptions } from "./locks";

/** Calls wait on the business, not on this machine: many at once (a slow endpoint fills slots, not the pool). */
export const FLOW_CALL_CONCURRENCY = 64;

export interface FlowCallWorkerDeps extends FlowCallDeps {
  connection: Redis;
  prefix: string;
  calls: FlowCalls;
  concurrency?: number;
  /** WORKER_LOCK_MS */
  lockMs?: number;
}

/**
 * The `flow-calls` worker (src/flows/flow-call.ts): a call nobody waits for any more is skipped; the call runs with
 * no transaction open; its answer is kept in the job before the flow resumes, so a job retried after a failure
 * while resuming (PostgreSQL or Redis down) resumes without calling the business again. A crash between the call
 * and that write calls again, with the same Idempotency-Key.
 */
export function createFlowCallWorker(deps: FlowCallWorkerDeps): Worker<EncryptedJob> {
  async function process(job: Job<EncryptedJob>): Promise<string> {
    const call = deps.calls.decrypt(job.data);
    let result = call.result;
    if (!result) {
      if (!(await stillWaiting(deps.sql, call))) return "stale";
      result = await performCall(deps, call);
      await job.updateData({ enc: deps.calls.encrypt({ ...call, result }) });
    }
    const outcome = await resumeFlowCall(deps, call, result);
    if (outcome === "stale") deps.logger.info({ flow: call.flow, step: call.step }, "flow call answered after its session moved on: ignored");
    return outcome;
  }

  const worker = new Worker<EncryptedJob>(QUEUES.flowCalls, process, {
    connection: deps.connection,
    prefix: deps.prefix,
    concurrency: deps.concurrency ?? FLOW_CALL_CONCURRENCY,
    // a call may take its step's timeout (≤ 10 s) times its attempts, plus the pauses between them
    ...workerLockOptions(deps.lockMs, 90_000),
  });
  worker.on("failed", (job, err) => deps.logger.error({ jobId: job?.id, attempts: job?.attemptsMade, err: err.message }, "flow call job failed"));
  worker.on("error", (err) => deps.logger.error({ err: err.message }, "flow call worker error"));
  return worker;
}
