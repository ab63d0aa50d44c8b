import { Job, type JobsOptions, type Queue } from "bullmq";
import type { ChainableCommander, Redis } from "ioredis";
import type { EncryptedJob } from "../queues/jobs";
import type { Mailboxes } from "./mailbox";

/** One job to write: what `Queue.addBulk` takes. */
export interface JobSpec {
  name: string;
  data: EncryptedJob;
  opts: JobsOptions & { jobId: string };
}

/** What one webhook POST hands to Redis: its mailbox entries (written first), its inbound and status jobs. */
export interface HandOffWrite {
  mailbox: { key: string; jobId: string; order: number }[];
  inbound: JobSpec[];
  statuses: JobSpec[];
}

interface Pending extends HandOffWrite {
  size: number;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Group commit for the webhook's hand-off to Redis. Concurrent webhook POSTs are coalesced: while one write is in
 * flight, the ones that arrive wait and then go together, as ONE pipeline on the producer connection (every POST's
 * mailbox entries first, then their jobs, the same commands BullMQ's addBulk sends). With nothing in flight a POST is
 * written at once (after the current event-loop turn, so the POSTs parsed in that turn share the round trip).
 *
 * Each POST's promise resolves only when every command of its own is acknowledged by Redis, and rejects if any of
 * them failed; a POST never waits on, or fails because of, another's commands. Order is kept: commands on one
 * connection run in the order sent, so a contact's mailbox entry is always in Redis before any later message's job
 * (docs/architecture.md, "Per-contact order").
 */
export class HandOff {
  private waiting: Pending[] = [];
  private flushing = false;
  private scheduled = false;

  constructor(
    private readonly redis: Pick<Redis, "status">,
    private readonly mailboxes: Pick<Mailboxes, "addAll">,
    private readonly inboundQueue: Queue<EncryptedJob>,
    private readonly statusQueue: Queue<EncryptedJob>,
    /** commands per pipeline before the next POSTs wait for another round trip (one POST is never split) */
    private readonly maxCommands = 2_000,
  ) {}

  write(w: HandOffWrite): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ ...w, size: w.mailbox.length * 2 + w.inbound.length + w.statuses.length, resolve, reject });
      if (!this.flushing && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          void this.flush();
        });
      }
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.waiting.length > 0) {
        let n = 0;
        let commands = 0;
        while (n < this.waiting.length && (n === 0 || commands + this.waiting[n]!.size <= this.maxCommands)) commands += this.waiting[n++]!.size;
        const batch = this.waiting.splice(0, n);
        await this.writeBatch(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    // one pipeline per connection: in production both queues share the producer connection, so it is one
    const pipes: { pipe: ChainableCommander; owner: number[] }[] = []; // owner: command index → batch index
    try {
      // the producer connection fails fast (no offline queue): so does the hand-off, before waiting on BullMQ's client
      if (this.redis.status !== "ready") throw new Error(`Redis is not connected (${this.redis.status}): enableOfflineQueue is false`);
      const inboundClient = await this.inboundQueue.client;
      const statusClient = await this.statusQueue.client;
      const main = { pipe: (inboundClient as unknown as Redis).pipeline(), owner: [] as number[] };
      const other = statusClient === inboundClient ? main : { pipe: (statusClient as unknown as Redis).pipeline(), owner: [] as number[] };
      pipes.push(main);
      if (other !== main) pipes.push(other);
      // 1. every mailbox entry, before any job, on the inbound jobs' connection (mailbox.ts writes them: ZADD NX per
      //    entry, EXPIRE per mailbox)
      batch.forEach((p, i) => {
        if (p.mailbox.length === 0) return;
        const before = queued(main.pipe);
        this.mailboxes.addAll(main.pipe, p.mailbox);
        for (let c = queued(main.pipe) - before; c > 0; c--) main.owner.push(i);
      });
      // 2. the jobs, as Queue.addBulk writes them (Job.createBulk: one addJob script per job)
      batch.forEach((p, i) => {
        for (const spec of p.inbound) {
          addJob(main.pipe, this.inboundQueue, spec);
          main.owner.push(i);
        }
        for (const spec of p.statuses) {
          addJob(other.pipe, this.statusQueue, spec);
          other.owner.push(i);
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(asError(err));
      return;
    }
    const failed = new Map<number, Error>();
    await Promise.all(
      pipes.map(async ({ pipe, owner }) => {
        if (owner.length === 0) return;
        let results: [Error | null, unknown][] | null;
        try {
          results = await pipe.exec();
        } catch (err) {
          for (const i of new Set(owner)) if (!failed.has(i)) failed.set(i, asError(err));
          return;
        }
        if (!results || results.length !== owner.length) {
          for (const i of new Set(owner)) if (!failed.has(i)) failed.set(i, new Error("pipeline aborted"));
          return;
        }
        results.forEach(([err], c) => {
          if (err && !failed.has(owner[c]!)) failed.set(owner[c]!, err);
        });
      }),
    );
    batch.forEach((p, i) => {
      const err = failed.get(i);
      if (err) p.reject(err);
      else p.resolve();
    });
  }
}

/** What Queue.addBulk → Job.createBulk does for one job, on our pipeline. */
function addJob(pipe: ChainableCommander, queue: Queue<EncryptedJob>, spec: JobSpec): void {
  const defaults = (queue as unknown as { jobsOpts?: JobsOptions }).jobsOpts ?? {};
  const job = new Job(queue, spec.name, spec.data, { ...defaults, ...spec.opts, jobId: spec.opts.jobId }, spec.opts.jobId);
  // queues the script on the pipeline synchronously; its result comes back with pipe.exec()
  void job.addJob(pipe as never, { parentKey: undefined, parentDependenciesKey: "" }).catch(() => undefined);
}

/** Commands queued on an ioredis pipeline so far. */
function queued(pipe: ChainableCommander): number {
  return (pipe as unknown as { length: number }).length;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
