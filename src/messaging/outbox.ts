import { randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import type { PrismaClient, Tx } from "../db/prisma";
import { Prisma } from "../db/prisma";
import type { Queryable } from "../db/sql";
import type { Logger } from "../observability/logger";
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

  /** After commit: one job per row. */
  async dispatch(messageIds: string[]): Promise<void> {
    if (messageIds.length === 0) return;
    await this.queue.addBulk(
      messageIds.map((messageId) => ({
        name: "send",
        data: { messageId },
        opts: { ...jobOptions.outbound, attempts: this.maxAttempts, jobId: jobIds.outbound(messageId) },
      })),
    );
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
