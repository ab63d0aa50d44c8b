import { randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import type { PrismaClient, Tx } from "../db/prisma";
import type { BatchStatement } from "../db/sql";
import { Prisma } from "../db/prisma";
import type { Logger } from "../observability/logger";
import { jobIds, jobOptions, type EventJob } from "../queues/jobs";
import type { Clock } from "../shared/clock";
import { assertNoSecrets } from "../shared/no-secrets";
import { readSettings } from "../tenants/settings";
import { eventDataSchemas, isEventType, type EventData, type EventEnvelope, type EventType } from "./types";

export { getCallback, rotateSecret, setCallback, validateCallbackUrl, InvalidCallbackUrlError } from "./callback";

/**
 * Events to the business, the outbox way: `publish` writes a `pending` EventDelivery row (the signed body's
 * payload and the URL) in the caller's transaction, so an event exists if and only if the change that caused it
 * committed; `dispatch` hands the rows to the events queue after commit (job id `e-<deliveryId>`, data
 * `{deliveryId}` only); `sweep` re-dispatches rows whose job was never written (a crash between commit and
 * dispatch). The delivery worker (src/queues/events.worker.ts) signs and POSTs them.
 */
export class EventPublisher {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly queue: Queue<EventJob>,
    private readonly logger: Logger,
    private readonly opts: { maxAttempts?: number; clock?: Clock } = {},
  ) {}

  /**
   * Inside the caller's transaction. Returns the delivery id (= the event id), or null when the tenant has no
   * callback URL (nothing is stored). Throws SecretInDataError if `data` has a code/otp/pin/secret key at any
   * depth, and a ZodError if it does not match the event's schema: both are bugs in the caller.
   */
  static async publish<T extends EventType>(tx: Tx, input: { tenantId: string; type: T; data: EventData<T>; now: Date }): Promise<string | null> {
    if (!isEventType(input.type)) throw new Error(`unknown event type ${String(input.type)}`);
    assertNoSecrets(input.data, { what: `event ${input.type}` });
    const data = eventDataSchemas[input.type].parse(input.data);
    const tenant = await tx.tenant.findUnique({ where: { id: input.tenantId }, select: { settings: true } });
    if (!tenant) throw new Error(`tenant ${input.tenantId} not found`);
    const { url } = readSettings(tenant.settings).events;
    if (!url) return null;
    const id = randomUUID();
    const payload: EventEnvelope = { id, type: input.type, createdAt: input.now.toISOString(), tenantId: input.tenantId, data };
    await tx.eventDelivery.create({
      data: { id, tenantId: input.tenantId, type: input.type, payload: payload as unknown as Prisma.InputJsonValue, url, status: "pending", createdAt: input.now },
      select: { id: true },
    });
    return id;
  }

  /**
   * `publish` for the hot paths' SQL transactions: the caller passes the tenant's callback URL (from settings it
   * read in the same request, `settings.events.url`) and adds the returned statement to its transaction. Null
   * when there is no URL. Same checks as `publish`, thrown before anything is sent.
   */
  static publishStatement<T extends EventType>(url: string | undefined, input: { tenantId: string; type: T; data: EventData<T>; now: Date }): (BatchStatement & { id: string }) | null {
    if (!isEventType(input.type)) throw new Error(`unknown event type ${String(input.type)}`);
    assertNoSecrets(input.data, { what: `event ${input.type}` });
    const data = eventDataSchemas[input.type].parse(input.data);
    if (!url) return null;
    const id = randomUUID();
    const payload: EventEnvelope = { id, type: input.type, createdAt: input.now.toISOString(), tenantId: input.tenantId, data };
    return {
      id,
      statement: `INSERT INTO event_deliveries (id, tenant_id, type, payload, url, status, created_at, updated_at)
VALUES ($1::uuid, $2::uuid, $3::text, $4::jsonb, $5::text, 'pending', $6::timestamptz, now())`,
      values: [id, input.tenantId, input.type, JSON.stringify(payload), url, input.now],
    };
  }

  /**
   * Sends a recorded event again (the delivery log's replay): the row goes back to pending and gets a job of its
   * own (a new job id, since the first job may still be kept). The same event id and body are delivered, so a
   * business that deduplicates on `X-Wabot-Event-Id` sees one event. Returns false for an unknown row.
   */
  async replay(tenantId: string, deliveryId: string): Promise<boolean> {
    const res = await this.prisma.eventDelivery.updateMany({ where: { id: deliveryId, tenantId }, data: { status: "pending", lastError: null } });
    if (res.count === 0) return false;
    const opts = { ...jobOptions.events, attempts: this.opts.maxAttempts ?? jobOptions.events.attempts ?? 10 };
    await this.queue.add("deliver", { deliveryId }, { ...opts, jobId: `${jobIds.event(deliveryId)}-r${Date.now()}` });
    return true;
  }

  /** After commit: one job per delivery row (ids from `publish`; nulls are skipped). */
  async dispatch(ids: Array<string | null>): Promise<void> {
    const deliveryIds = ids.filter((id): id is string => typeof id === "string");
    if (deliveryIds.length === 0) return;
    const opts = { ...jobOptions.events, attempts: this.opts.maxAttempts ?? jobOptions.events.attempts ?? 10 };
    await this.queue.addBulk(deliveryIds.map((deliveryId) => ({ name: "deliver", data: { deliveryId }, opts: { ...opts, jobId: jobIds.event(deliveryId) } })));
  }

  /**
   * Re-dispatches rows still pending and never tried after `olderThanMs`: their job was never written. (A job id
   * that still exists makes the add a no-op, so a row is never queued twice.) Returns how many.
   */
  async sweep(olderThanMs = 30_000): Promise<number> {
    const now = this.opts.clock?.now().getTime() ?? Date.now();
    const rows = await this.prisma.eventDelivery.findMany({
      where: { status: "pending", attempts: 0, createdAt: { lt: new Date(now - olderThanMs) } },
      select: { id: true },
      orderBy: { createdAt: "asc" },
      take: 1000,
    });
    if (rows.length > 0) {
      this.logger.warn({ count: rows.length }, "re-dispatching event deliveries whose job was missing");
      await this.dispatch(rows.map((r) => r.id));
    }
    return rows.length;
  }
}
