import type { Queue } from "bullmq";
import type { PrismaClient, Tx } from "../db/prisma";
import { Prisma } from "../db/prisma";
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
