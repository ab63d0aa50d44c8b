import { randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import type { PrismaClient, Tx } from "../db/prisma";
import { Prisma } from "../db/prisma";
import type { Queryable } from "../db/sql";
import type { Logger } from "../observability/logger";
import { currentRequestId } from "../observability/request-context";
import { jobIds, jobOptions, type OutboundJob } from "../queues/jobs";

/**
 * Meta's message object for one outbound message, without the routing fields (`messaging_product`, `to` /
 * `recipient`, `recipient_type`), which the send worker adds from the contact. Example:
 * `{ type: "text", text: { body: "Hi" } }` or `{ type: "template", template: { … } }`.
 */
export interface OutboundContent {
  type: string;
  [field: string]: unknown;
}

/**
 * The outbox: replies are written as `queued` message rows in the same transaction as the handling that
 * produced them, and handed to the outbound queue after commit. A crash between the two is repaired by
 * `sweep()`, which re-dispatches queued rows (the job id is the row id, so a row is never queued twice).
 */
export class Outbox {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly queue: Queue<OutboundJob>,
    private readonly logger: Logger,
    private readonly maxAttempts = jobOptions.outbound.attempts ?? 8,
  ) {}

  /** Inside the caller's transaction: one queued row per message, in order. Returns the row ids. */
  static async create(
    tx: Tx,
    input: { tenantId: string; contactId: string; contents: OutboundContent[]; now: Date; verificationId?: string },
  ): Promise<string[]> {
    const ids: string[] = [];
    for (const content of input.contents) {
      const row = await tx.message.create({
        data: {
          tenantId: input.tenantId,
          contactId: input.contactId,
          direction: "outbound",
          type: content.type,
          payload: content as Prisma.InputJsonValue,
          status: "queued",
          timestamp: input.now,
          verificationId: input.verificationId,
        },
        select: { id: true },
      });
      ids.push(row.id);
    }
    return ids;
  }

  /**
   * Like `create`, with hand-written SQL (the hot path; `q` is the caller's transaction). Ids are made here.
   * `commit`: these rows are the transaction's last writes; COMMIT goes with the last one (see QueryOptions).
   */
  static async insert(
    q: Queryable,
    input: { tenantId: string; contactId: string; contents: OutboundContent[]; now: Date; verificationId?: string },
    opts: { commit?: boolean } = {},
  ): Promise<string[]> {
    const ids: string[] = [];
    for (const [i, content] of input.contents.entries()) {
      const id = randomUUID();
      const values = [id, input.tenantId, input.contactId, content.type, JSON.stringify(content), input.now, input.verificationId ?? null, new Date()];
      await q.execute(INSERT_OUTBOUND, values, { commit: opts.commit && i === input.contents.length - 1 });
      ids.push(id);
    }
    return ids;
  }

  /**
   * After commit: one job per row. The jobs carry the request id (`opts.requestId`, else the current request's or
   * job's, request-context.ts) so the send is traceable to the webhook or API call that caused it.
   */
  async dispatch(messageIds: string[], opts: { requestId?: string } = {}): Promise<void> {
    if (messageIds.length === 0) return;
    const requestId = opts.requestId ?? currentRequestId();
    await this.queue.addBulk(
      messageIds.map((messageId) => ({
        name: "send",
        data: requestId ? { messageId, requestId } : { messageId },
        opts: { ...jobOptions.outbound, attempts: this.maxAttempts, jobId: jobIds.outbound(messageId) },
      })),
    );
  }

  /**
   * The still-`queued` replies of the contact of an inbound message (by its wamid), handed to the queue again. For
   * the retry of a message whose transaction committed but whose `dispatch` failed (Redis went down between the
   * commit and the enqueue): the retry finds the wamid claimed and does nothing else, so without this the replies
   * would wait for the next `sweep()` (up to 45 s). Idempotent: the job id is the row id. Returns how many.
   */
  async redispatchQueuedAfter(tenantId: string, wamid: string, opts: { requestId?: string } = {}): Promise<number> {
    const rows = await this.prisma.$queryRaw<{ id: string }[]>`
      SELECT o.id::text AS id FROM messages i
        JOIN messages o ON o.contact_id = i.contact_id AND o.direction = 'outbound' AND o.status = 'queued' AND o.seq > i.seq
       WHERE i.tenant_id = ${tenantId}::uuid AND i.wamid = ${wamid} AND i.direction = 'inbound'
       ORDER BY o.seq ASC LIMIT 100`;
    if (rows.length > 0) await this.dispatch(rows.map((r) => r.id), opts);
    return rows.length;
  }

  /** Re-dispatches rows still queued after `olderThanMs` (their job was never written). Returns how many. */
  async sweep(olderThanMs = 30_000): Promise<number> {
    const rows = await this.prisma.message.findMany({
      where: { direction: "outbound", status: "queued", createdAt: { lt: new Date(Date.now() - olderThanMs) } },
      select: { id: true },
      orderBy: { seq: "asc" },
      take: 1000,
    });
    if (rows.length > 0) {
      this.logger.warn({ count: rows.length }, "re-dispatching outbound messages whose job was missing");
      await this.dispatch(rows.map((r) => r.id));
    }
    return rows.length;
  }
}

const INSERT_OUTBOUND = {
  name: "outbox_insert",
  text: `INSERT INTO messages (id, tenant_id, contact_id, direction, type, payload, status, timestamp, verification_id, updated_at)
VALUES ($1::uuid, $2::uuid, $3::uuid, 'outbound'::"Direction", $4::text, $5::jsonb, 'queued'::"MessageStatus", $6::timestamptz, $7::uuid, $8::timestamptz)`,
};
