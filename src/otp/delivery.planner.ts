import type { Queue } from "bullmq";
import type { Config } from "../config/env";
import { randomUUID } from "node:crypto";
import { transaction, type PrismaClient, type Tx } from "../db/prisma";
import { batch, sqlFor, type BatchStatement, type Queryable } from "../db/sql";
import { Outbox, type OutboundContent } from "../messaging/outbox";
import type { Logger } from "../observability/logger";
import type { CodeSender, ProviderStatusUpdate } from "../providers/ports";
import { jobIds, jobOptions, type OtpJob } from "../queues/jobs";
import type { OutboundMessageRecord } from "../queues/outbound.worker";
import { VerificationEndedError } from "../queues/outbound.worker";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { readSettings, readSettingsText, testNumberOf, type Channel, type TenantSettings } from "../tenants/settings";
import { isUnsendable, type TemplateHealth } from "../tenants/templates";
import { auditStatement } from "../audit/audit";
import { EventPublisher } from "../events/publisher";
import { emptyPostCommit, type DeliveryPlanner, type PlanInput, type PostCommit } from "./delivery";
import type { FallbackBudget } from "./fallback-budget";
import type { OtpEventInput, OtpEvents } from "./otp-events";
import { NOT_ME_BUTTON_ID, otpTexts } from "./texts";

/** What a stored code message carries where the code goes; filled in by `resolveContent` at send time only. */
export const OTP_PLACEHOLDER = "{{otp}}";

/** OtpDelivery.status values. */
export type DeliveryStatus = "queued" | "sent" | "delivered" | "failed" | "timed_out" | "superseded";
/** why a delivery is given up: the channel reported failure, or nothing was delivered in time */
export type FallbackReason = "failed" | "no_delivery";

const WINDOW_MS = 24 * 3600_000;
const OPEN: DeliveryStatus[] = ["queued", "sent"];

export interface OtpDeliveryPlannerDeps {
  prisma: PrismaClient;
  keyring: Keyring;
  outbox: Outbox;
  otpQueue: Queue<OtpJob>;
  senders: { sms?: CodeSender; voice?: CodeSender };
  events: OtpEvents;
  /** hands event delivery rows to the events queue (EventPublisher.dispatch) */
  eventDispatch: (ids: string[]) => Promise<void>;
  config: Pick<Config, "WHATSAPP_OTP_TEMPLATE" | "WHATSAPP_OTP_TEMPLATE_LANGUAGE" | "BUSINESS_NAME">;
  clock: Clock;
  logger: Logger;
  /** unsendable WhatsApp templates (src/tenants/templates.ts): a code whose template is paused skips WhatsApp */
  templates?: Pick<TemplateHealth, "blockedStatus">;
  /** the daily spend cap on SMS/voice (src/otp/fallback-budget.ts); none: no cap */
  budget?: Pick<FallbackBudget, "reserve">;
}

/** OtpEventInput plus the fields some event types carry (fallback: fromChannel; sent/delivered: provider). */
type EventInput = OtpEventInput & { fromChannel?: Channel; provider?: string };

/**
 * How a code reaches the customer, and what happens when it does not.
 *
 * `plan` (inside the caller's transaction) records an OtpDelivery per attempt and the work that carries the code:
 * WhatsApp → a queued authentication-template message whose parameters hold the placeholder `{{otp}}` (the code
 * is filled in by the send worker through `resolveContent`, so it is never stored, queued or logged), optionally
 * followed by our "never share this code" warning when the 24-hour window is open; SMS/voice → a `deliver` job on
 * the otp queue. Every attempt arms a delayed `timeout` job.
 *
 * Delivery feedback (`onMessageStatus` for WhatsApp, `onProviderStatus` for SMS/voice, the otp worker's results)
 * moves the OtpDelivery along queued → sent → delivered, each step recorded once; a failure or a timeout calls
 * `fallBack`, which ends the delivery with one conditional update (so a failed webhook and a timeout arriving
 * together fall back once) and plans the next available channel in the tenant's order with the same code.
 */
export class OtpDeliveryPlanner implements DeliveryPlanner {
  constructor(private readonly deps: OtpDeliveryPlannerDeps) {}

  available(channel: Channel): boolean {
    return channel === "whatsapp" || !!this.deps.senders[channel];
  }

  /** `cause` (from `fallBack`): what happened to the previous attempt, told in the fallback event */
  async plan(tx: Tx, post: PostCommit, input: PlanInput, cause?: { errorCode?: string | number | null; reason?: string }): Promise<void> {
    const v = await tx.verification.findUniqueOrThrow({
      where: { id: input.verificationId },
      include: { tenant: { select: { settings: true } } },
    });
    const settings = readSettings(v.tenant.settings);
    const locale = v.locale ?? settings.otp.defaultLocale;
    const previous =
      input.reason === "fallback"
        ? await tx.otpDelivery.findFirst({ where: { verificationId: v.id }, orderBy: { createdAt: "desc" }, select: { channel: true } })
        : null;

    // the channel really used: WhatsApp is skipped while its template is unsendable, a paid channel over the budget
    const choice = await this.chooseChannel(tx, { id: v.id, tenantId: v.tenantId, locale, to: v.to }, settings, input.channel);
    if (!choice) {
      // every channel left was refused by the daily budget: the business is told the code cannot be delivered
      await this.record(tx, post, {
        tenantId: v.tenantId, type: "failed", actor: "system", now: input.now, verificationId: v.id, to: v.to, purpose: v.purpose,
        channel: input.channel, reason: "fallback_budget_reached",
      });
      this.deps.logger.warn({ verificationId: v.id, channel: input.channel }, "no code channel within the daily fallback budget: code not sent");
      return;
    }
    const channel = choice.channel;
    if (choice.skipped && input.reason !== "fallback" && channel !== v.channel) {
      // the first channel tried is the verification's channel
      await tx.verification.update({ where: { id: v.id }, data: { channel } });
    }
    const rowReason = choice.skipped?.reason ?? input.reason;

    let deliveryId: string;
    if (channel === "whatsapp") {
      const contact = await this.contactFor(tx, v.tenantId, v.to);
      if (v.contactId !== contact.id) await tx.verification.update({ where: { id: v.id }, data: { contactId: contact.id } });
      const codeContent = codeTemplate(chooseTemplate(settings, locale, this.deps.config));
      const [codeMessageId] = await Outbox.create(tx, { tenantId: v.tenantId, contactId: contact.id, contents: [codeContent], now: input.now, verificationId: v.id });
      post.messages.push(codeMessageId!);
      const windowOpen = !!contact.lastInboundAt && input.now.getTime() - contact.lastInboundAt.getTime() < WINDOW_MS;
      if (settings.otp.warnAfterCode && windowOpen) {
        const warning: OutboundContent = {
          type: "interactive",
          interactive: {
            type: "button",
            body: { text: otpTexts.warning(locale) },
            action: { buttons: [{ type: "reply", reply: { id: NOT_ME_BUTTON_ID, title: otpTexts.notMeTitle(locale) } }] },
          },
        };
        post.messages.push(...(await Outbox.create(tx, { tenantId: v.tenantId, contactId: contact.id, contents: [warning], now: input.now })));
      }
      const d = await tx.otpDelivery.create({
        data: { verificationId: v.id, channel: "whatsapp", provider: "whatsapp", status: "queued", messageId: codeMessageId, reason: rowReason },
        select: { id: true },
      });
      deliveryId = d.id;
    } else {
      const sender = this.deps.senders[channel];
      if (!sender) throw new Error(`no ${channel} provider is configured`);
      const d = await tx.otpDelivery.create({
        data: { id: choice.deliveryId, verificationId: v.id, channel, provider: sender.provider, status: "queued", reason: rowReason },
        select: { id: true },
      });
      deliveryId = d.id;
      post.deliveries.push(deliveryId);
    }
    // a no-delivery timeout only where delivery is reported (WhatsApp statuses; SMS/voice with status callbacks)
    if (channel === "whatsapp" || this.deps.senders[channel]?.reportsDelivery) {
      post.timeouts.push({ deliveryId, delayMs: settings.otp.deliveryTimeoutSeconds * 1000 });
    }

    if (input.reason === "fallback") {
      await this.record(tx, post, {
        tenantId: v.tenantId, type: "fallback", actor: "system", now: input.now, verificationId: v.id, to: v.to, purpose: v.purpose,
        channel, ...(previous ? { fromChannel: previous.channel as Channel } : {}),
        ...(cause?.errorCode !== undefined && cause.errorCode !== null ? { errorCode: cause.errorCode } : {}),
        ...(cause?.reason ? { reason: cause.reason } : choice.skipped ? { reason: choice.skipped.reason } : {}),
      });
    } else if (choice.skipped) {
      await this.record(tx, post, {
        tenantId: v.tenantId, type: "fallback", actor: "system", now: input.now, verificationId: v.id, to: v.to, purpose: v.purpose,
        channel, fromChannel: choice.skipped.from, reason: choice.skipped.reason,
      });
    }
  }

  /**
   * The channel a code really goes out on, from `wanted` along the tenant's order: WhatsApp is passed over while
   * the locale's code template is unsendable (PAUSED, DISABLED, REJECTED, …: Meta would answer 132015/132016), a
   * paid channel when its cost does not fit today's budget (reserved here, under the delivery id returned). With
   * nothing else left, a passed-over WhatsApp is kept (it costs nothing, the pause may be over, and a refusal is
   * reported like any failure); with no channel at all, null. `skipped`: the first channel passed over, and why.
   */
  private async chooseChannel(
    tx: Tx,
    v: { id: string; tenantId: string; locale: string; to: string },
    settings: TenantSettings,
    wanted: Channel,
  ): Promise<{ channel: Channel; deliveryId: string; skipped: { from: Channel; reason: string } | null } | null> {
    const deliveryId = randomUUID();
    let skipped: { from: Channel; reason: string } | null = null;
    let whatsappLastResort = false;
    const tried = new Set<Channel>();
    for (let c: Channel | null = wanted; c; c = nextChannel(settings.otp.channels, c, (x) => this.available(x) && !tried.has(x))) {
      tried.add(c);
      if (c === "whatsapp") {
        const blocked = await this.templateBlocked(tx, v.tenantId, chooseTemplate(settings, v.locale, this.deps.config));
        if (!blocked) return { channel: c, deliveryId, skipped };
        skipped ??= { from: c, reason: `template_${blocked.toLowerCase()}` };
        whatsappLastResort = true;
        continue;
      }
      if (testNumberOf(settings, v.to)) {
        // a test number's code never goes out on a paid channel
        skipped ??= { from: c, reason: "test_number" };
        continue;
      }
      if (!this.deps.budget) return { channel: c, deliveryId, skipped };
      const r = await this.deps.budget.reserve({ tenantId: v.tenantId, settings, channel: c, ref: deliveryId, verificationId: v.id });
      if (r.ok) return { channel: c, deliveryId, skipped };
      skipped ??= { from: c, reason: "fallback_budget_reached" };
    }
    if (whatsappLastResort) {
      this.deps.logger.warn({ verificationId: v.id, tenantId: v.tenantId }, "code template unsendable and no other code channel available: trying WhatsApp anyway");
      return { channel: "whatsapp", deliveryId, skipped: null };
    }
    return null;
  }

  /** The unsendable status of the template (read in the transaction: exact), or null. */
  private async templateBlocked(tx: Tx, tenantId: string, t: { name: string; language: string }): Promise<string | null> {
    if (!this.deps.templates) return null;
    const row = await tx.templateStatus.findUnique({ where: { tenantId_name_language: { tenantId, name: t.name, language: t.language } }, select: { status: true } });
    return row && isUnsendable(row.status) ? row.status : null;
  }

  /**
   * SMS/voice, in the send worker just before the provider call: reserves the code's cost (a no-op when `plan`
   * already did, same delivery id). Over the budget: the delivery fails (error "fallback_budget") and falls back.
   * Returns whether the code may be sent.
   */
  async admitPaid(d: { id: string; channel: Channel; verificationId: string; tenantId: string; to: string; settings: unknown }): Promise<boolean> {
    if (d.channel === "whatsapp") return true;
    const settings = readSettings(d.settings);
    if (testNumberOf(settings, d.to)) {
      // the last gate before a provider: a test number's code is never sent on a paid channel
      this.deps.logger.warn({ verificationId: d.verificationId, channel: d.channel }, "paid channel refused for a test number: code not sent");
      await this.fallBack(d.id, "failed", "test_number");
      return false;
    }
    if (!this.deps.budget) return true;
    const r = await this.deps.budget.reserve({ tenantId: d.tenantId, settings, channel: d.channel, ref: d.id, verificationId: d.verificationId });
    if (r.ok) return true;
    await this.fallBack(d.id, "failed", "fallback_budget");
    return false;
  }

  /**
   * `plan`'s contact lookup-or-create (WhatsApp) as one statement, so a SQL transaction can send it with its first
   * statement. No row comes back only when a concurrent insert of the same contact won: then `contactAfterRace`.
   */
  contactStatement(tenantId: string, phoneE164: string): BatchStatement {
    return { statement: CONTACT_FIND_OR_CREATE, values: [tenantId, phoneE164.replace(/^\+/, ""), phoneE164, randomUUID()] };
  }

  async contactAfterRace(q: Queryable, tenantId: string, phoneE164: string): Promise<SqlContact> {
    const rows = await q.query<SqlContact>(`SELECT id, last_inbound_at AS "lastInboundAt" FROM contacts WHERE tenant_id = $1::uuid AND wa_id = $2::text`, [tenantId, phoneE164.replace(/^\+/, "")]);
    if (!rows[0]) throw new Error("the contact could not be created");
    return rows[0];
  }

  /**
   * `plan` for a SQL transaction (a new code or a re-send; not fallbacks): the statements that record the
   * delivery and its messages, for the caller to batch with its other writes. The caller has the verification
   * row (`contactId` is set on it by the caller when `contact` differs) and the tenant's settings; `contact` is the
   * result of `contactStatement` for WhatsApp. Post-commit work goes to `post`, as with `plan`.
   */
  planStatements(
    post: PostCommit,
    input: PlanInput,
    v: { id: string; tenantId: string; locale: string | null; to?: string },
    settings: TenantSettings,
    contact: SqlContact | null,
  ): BatchStatement[] {
    const locale = v.locale ?? settings.otp.defaultLocale;
    const out: BatchStatement[] = [];
    const deliveryId = randomUUID();
    // WhatsApp is passed over while the locale's code template is unsendable (this process's view of the statuses:
    // a stale one costs a send that Meta refuses with 132015/132016, which then falls back like any failure)
    const skip = this.skipWhatsapp(v.tenantId, settings, locale, input.channel, v.to);
    if (skip) {
      input = { ...input, channel: skip.channel };
      out.push({ statement: `UPDATE verifications SET channel = $2::text, updated_at = now() WHERE id = $1::uuid`, values: [v.id, skip.channel] });
      out.push(...this.skipStatements(post, v, settings, skip, input.now));
    }
    const rowReason = skip?.reason ?? input.reason;
    if (input.channel === "whatsapp") {
      if (!contact) throw new Error("a WhatsApp code needs the contact");
      const codeContent = codeTemplate(chooseTemplate(settings, locale, this.deps.config));
      const contents: { content: OutboundContent; verificationId: string | null }[] = [{ content: codeContent, verificationId: v.id }];
      const windowOpen = !!contact.lastInboundAt && input.now.getTime() - contact.lastInboundAt.getTime() < WINDOW_MS;
      if (settings.otp.warnAfterCode && windowOpen) {
        contents.push({
          verificationId: null,
          content: {
            type: "interactive",
            interactive: {
              type: "button",
              body: { text: otpTexts.warning(locale) },
              action: { buttons: [{ type: "reply", reply: { id: NOT_ME_BUTTON_ID, title: otpTexts.notMeTitle(locale) } }] },
            },
          },
        });
      }
      let codeMessageId = "";
      for (const c of contents) {
        const id = randomUUID();
        if (!codeMessageId) codeMessageId = id;
        out.push({ statement: INSERT_OUTBOUND, values: [id, v.tenantId, contact.id, c.content.type, JSON.stringify(c.content), input.now, c.verificationId, new Date()] });
        post.messages.push(id);
      }
      out.push({ statement: INSERT_DELIVERY, values: [deliveryId, v.id, "whatsapp", "whatsapp", codeMessageId, rowReason] });
    } else {
      const sender = this.deps.senders[input.channel];
      if (!sender) throw new Error(`no ${input.channel} provider is configured`);
      out.push({ statement: INSERT_DELIVERY, values: [deliveryId, v.id, input.channel, sender.provider, null, rowReason] });
      post.deliveries.push(deliveryId);
    }
    if (input.channel === "whatsapp" || this.deps.senders[input.channel]?.reportsDelivery) {
      post.timeouts.push({ deliveryId, delayMs: settings.otp.deliveryTimeoutSeconds * 1000 });
    }
    return out;
  }

  /** `chooseChannel`'s template rule for the synchronous SQL path: the channel to use instead of WhatsApp, or null. */
  private skipWhatsapp(tenantId: string, settings: TenantSettings, locale: string, wanted: Channel, to?: string): { channel: Channel; reason: string } | null {
    if (wanted !== "whatsapp" || !this.deps.templates) return null;
    // a test number stays on WhatsApp: its code never goes out on a paid channel
    if (to !== undefined && testNumberOf(settings, to)) return null;
    const t = chooseTemplate(settings, locale, this.deps.config);
    const blocked = this.deps.templates.blockedStatus(tenantId, t.name, t.language);
    if (!blocked) return null;
    const alt = nextChannel(settings.otp.channels, "whatsapp", (c) => this.available(c));
    if (!alt) {
      this.deps.logger.warn({ tenantId, template: t.name, language: t.language, status: blocked }, "code template unsendable and no other code channel available: trying WhatsApp anyway");
      return null;
    }
    return { channel: alt, reason: `template_${blocked.toLowerCase()}` };
  }

  /**
   * The audit row and the `verification.fallback` event of a skipped WhatsApp, as statements. The SQL path's caller
   * gives no number or purpose here: the event row takes them from the verification row written earlier in the
   * same batch (the payload is validated with stand-ins first, like every event).
   */
  private skipStatements(post: PostCommit, v: { id: string; tenantId: string }, settings: TenantSettings, skip: { channel: Channel; reason: string }, now: Date): BatchStatement[] {
    const data = { verificationId: v.id, channel: skip.channel, fromChannel: "whatsapp" as const, reason: skip.reason };
    const out: BatchStatement[] = [auditStatement({ tenantId: v.tenantId, type: "verification.fallback", actor: "system", verificationId: v.id, data, at: now })];
    const st = EventPublisher.publishStatement(settings.events.url, {
      tenantId: v.tenantId, type: "verification.fallback", now, data: { ...data, to: "+10000000000", purpose: "stand-in", status: "pending" },
    });
    if (st) {
      out.push({
        statement: `INSERT INTO event_deliveries (id, tenant_id, type, payload, url, status, created_at, updated_at)
SELECT $1::uuid, $2::uuid, $3::text, jsonb_set(jsonb_set($4::jsonb, '{data,to}', to_jsonb(v."to")), '{data,purpose}', to_jsonb(v.purpose)), $5::text, 'pending', $6::timestamptz, now()
  FROM verifications v WHERE v.id = $7::uuid`,
        values: [...st.values, v.id],
      });
      post.events.push(st.id);
    }
    return out;
  }

  async afterCommit(post: PostCommit): Promise<void> {
    await this.deps.outbox.dispatch(post.messages);
    const jobs = [
      ...post.deliveries.map((deliveryId) => ({ name: "deliver", data: { deliveryId }, opts: { ...jobOptions.otp, jobId: jobIds.otpDeliver(deliveryId) } })),
      ...post.timeouts.map((t) => ({ name: "timeout", data: { deliveryId: t.deliveryId }, opts: { ...jobOptions.otp, attempts: 3, delay: t.delayMs, jobId: jobIds.otpTimeout(t.deliveryId) } })),
    ];
    if (jobs.length > 0) await this.deps.otpQueue.addBulk(jobs);
    if (post.events.length > 0) await this.deps.eventDispatch(post.events);
  }

  /**
   * The outbound worker's `resolveContent`: fills the code into a code message at send time. Refuses
   * (VerificationEndedError) when the verification is no longer pending: a code approved, expired or canceled
   * meanwhile is never sent.
   */
  resolveContent = async (message: OutboundMessageRecord): Promise<OutboundContent> => {
    if (!message.verificationId) return message.payload;
    const [v] = await sqlFor(this.deps.prisma).query<{ status: string; codeEnc: string | null; expiresAt: Date }>(
      `SELECT status::text AS status, code_enc AS "codeEnc", expires_at AS "expiresAt" FROM verifications WHERE id = $1::uuid`,
      [message.verificationId],
    );
    if (!v) throw new VerificationEndedError("the verification no longer exists");
    if (v.status !== "pending") throw new VerificationEndedError(`the verification is ${v.status}`);
    if (v.expiresAt <= this.deps.clock.now()) throw new VerificationEndedError("the verification has expired");
    if (!v.codeEnc) throw new VerificationEndedError("the verification has no code any more");
    const code = this.deps.keyring.decryptString("otp-code", v.codeEnc);
    return fillPlaceholder(message.payload, code) as OutboundContent;
  };

  /** A WhatsApp code message's status changed (send worker or status webhook). */
  onMessageStatus = async (messageId: string, status: string, errorCode?: string | number | null): Promise<void> => {
    if (status === "sent") return void (await this.stepByMessage(messageId, "sent"));
    if (status === "delivered" || status === "read") return void (await this.stepByMessage(messageId, "delivered"));
    if (status !== "failed") return; // queued/sending/unknown words: nothing to record
    const d = await this.deps.prisma.otpDelivery.findFirst({ where: { messageId, channel: "whatsapp" }, select: { id: true } });
    if (!d) return;
    await this.applyStatus(d.id, status, errorCode ?? undefined);
  };

  /**
   * `step` for a WhatsApp code message, on plain SQL: the one conditional update (found by the message, with the
   * verification and the tenant's settings in its RETURNING), then the audit row, the event and COMMIT in one
   * more round trip. A status already recorded costs the update and the COMMIT.
   */
  private async stepByMessage(messageId: string, to: "sent" | "delivered"): Promise<boolean> {
    // Statuses only move forward: once this step has run for a message (moved it or found nothing to move), the same
    // step again can never move it (`sent` needs `queued`; a `delivered` that found nothing to move found the
    // delivery delivered, failed or superseded, or the message has none). The send worker and the status webhook
    // both report `sent`: the second report costs nothing.
    const key = `${to}:${messageId}`;
    if (this.stepped.has(key)) return false;
    const moved = await this.stepByMessageOnce(messageId, to);
    if (this.stepped.size >= 50_000) this.stepped.clear();
    this.stepped.add(key);
    return moved;
  }

  private readonly stepped = new Set<string>();

  private async stepByMessageOnce(messageId: string, to: "sent" | "delivered"): Promise<boolean> {
    const now = this.deps.clock.now();
    const post = emptyPostCommit();
    // a late `delivered` after a timeout is still worth recording (the customer did get the code)
    const from: DeliveryStatus[] = to === "sent" ? ["queued"] : ["queued", "sent", "timed_out"];
    const moved = await sqlFor(this.deps.prisma).transaction(async (q) => {
      const [rows] = await batch(q, [{ statement: STEP_BY_MESSAGE, values: [messageId, to, `{${from.join(",")}}`] }]);
      const r = rows![0] as { channel: Channel; provider: string; verificationId: string; tenantId: string; to: string; purpose: string; settings: string | null } | undefined;
      if (!r) return false;
      const settings = readSettingsText(r.tenantId, r.settings);
      const writes = this.deps.events.statements(settings.events.url, post, {
        tenantId: r.tenantId, type: to, actor: "system", now, verificationId: r.verificationId, to: r.to, purpose: r.purpose, channel: r.channel, provider: r.provider,
      });
      await batch(q, writes, { commit: true });
      return true;
    });
    await this.afterCommit(post);
    return moved;
  }

  /** An SMS/voice provider's status callback. */
  onProviderStatus = async (update: ProviderStatusUpdate): Promise<void> => {
    const d = await this.deps.prisma.otpDelivery.findFirst({ where: { provider: update.provider, providerRef: update.providerRef }, select: { id: true } });
    if (!d) {
      this.deps.logger.warn({ provider: update.provider, status: update.status }, "provider status for an unknown delivery: ignored");
      return;
    }
    await this.applyStatus(d.id, update.status, update.errorCode);
  };

  /** SMS/voice: the provider accepted the code. */
  async markSent(deliveryId: string, providerRef: string): Promise<boolean> {
    return this.step(deliveryId, "sent", { providerRef });
  }

  private async applyStatus(deliveryId: string, status: string, errorCode?: string | number): Promise<void> {
    switch (status) {
      case "sent":
        await this.step(deliveryId, "sent");
        return;
      case "delivered":
      case "read":
        await this.step(deliveryId, "delivered");
        return;
      case "failed":
        await this.fallBack(deliveryId, "failed", errorCode);
        return;
      default:
        return; // queued/sending/unknown words: nothing to record
    }
  }

  /** queued → sent, or (queued|sent|timed_out) → delivered: one conditional update, so each event is recorded once. */
  private async step(deliveryId: string, to: "sent" | "delivered", extra: { providerRef?: string } = {}): Promise<boolean> {
    const now = this.deps.clock.now();
    const post = emptyPostCommit();
    const moved = await transaction(this.deps.prisma, async (tx) => {
      // a late `delivered` after a timeout is still worth recording (the customer did get the code)
      const from: DeliveryStatus[] = to === "sent" ? ["queued"] : ["queued", "sent", "timed_out"];
      const res = await tx.otpDelivery.updateMany({ where: { id: deliveryId, status: { in: from } }, data: { status: to, ...extra } });
      if (res.count === 0) {
        if (extra.providerRef) await tx.otpDelivery.updateMany({ where: { id: deliveryId, providerRef: null }, data: extra });
        return false;
      }
      const d = await tx.otpDelivery.findUniqueOrThrow({ where: { id: deliveryId }, include: { verification: true } });
      const v = d.verification;
      await this.record(tx, post, {
        tenantId: v.tenantId, type: to, actor: "system", now, verificationId: v.id, to: v.to, purpose: v.purpose, channel: d.channel as Channel, provider: d.provider,
      });
      return true;
    });
    await this.afterCommit(post);
    return moved;
  }

  /**
   * Gives up on one delivery (once, however many triggers arrive) and, while the verification is pending and no
   * other attempt of it is still under way, plans the next available channel in the tenant's order with the
   * same code. With no channel left the business is told the code could not be delivered (`failed`).
   * Returns whether this call ended the delivery.
   */
  async fallBack(deliveryId: string, reason: FallbackReason, errorCode?: string | number | null): Promise<boolean> {
    const now = this.deps.clock.now();
    const post = emptyPostCommit();
    const result = await transaction(this.deps.prisma, async (tx) => {
      const head = await tx.otpDelivery.findUnique({ where: { id: deliveryId }, select: { verificationId: true } });
      if (!head) return null;
      // one verification's fallbacks are serialized (two deliveries failing together must not both stand aside)
      await tx.$queryRaw`SELECT id FROM verifications WHERE id = ${head.verificationId}::uuid FOR UPDATE`;
      const ended = await tx.otpDelivery.updateMany({
        where: { id: deliveryId, status: { in: OPEN } },
        data: { status: reason === "no_delivery" ? "timed_out" : "failed", reason: reason === "no_delivery" ? "no_delivery" : "failed", ...(errorCode !== undefined && errorCode !== null ? { errorCode: String(errorCode) } : {}) },
      });
      if (ended.count === 0) return null;
      const d = await tx.otpDelivery.findUniqueOrThrow({ where: { id: deliveryId }, include: { verification: { include: { tenant: { select: { settings: true } } } } } });
      const v = d.verification;
      if (v.status !== "pending" || v.expiresAt <= now) return { next: null, channel: d.channel, stoodAside: true };
      const others = await tx.otpDelivery.count({ where: { verificationId: v.id, id: { not: d.id }, status: { in: ["queued", "sent", "delivered"] } } });
      if (others > 0) return { next: null, channel: d.channel, stoodAside: true };
      const settings = readSettings(v.tenant.settings);
      // a test number's code never falls back to a paid channel
      const test = !!testNumberOf(settings, v.to);
      const next = nextChannel(settings.otp.channels, d.channel as Channel, (c) => this.available(c) && (c === "whatsapp" || !test));
      const why = reason === "no_delivery" ? "delivery_timeout" : "delivery_failed";
      const base = { tenantId: v.tenantId, actor: "system", now, verificationId: v.id, to: v.to, purpose: v.purpose };
      if (next) {
        await this.plan(tx, post, { verificationId: v.id, channel: next, reason: "fallback", now }, { errorCode, reason: why });
      } else {
        await this.record(tx, post, {
          ...base, type: "failed", channel: d.channel as Channel, provider: d.provider, reason: why,
          ...(errorCode !== undefined && errorCode !== null ? { errorCode } : {}),
        });
      }
      return { next, channel: d.channel, stoodAside: false };
    });
    if (!result) return false;
    await this.afterCommit(post);
    this.deps.logger.info(
      { deliveryId, channel: result.channel, reason, errorCode: errorCode ?? undefined, next: result.next ?? undefined, stoodAside: result.stoodAside || undefined },
      result.next ? "code delivery failed: falling back" : "code delivery failed",
    );
    return true;
  }

  /** A verification ended before its SMS/voice code left: the attempt is dropped. */
  async supersede(deliveryId: string, why: string): Promise<void> {
    await this.deps.prisma.otpDelivery.updateMany({ where: { id: deliveryId, status: "queued" }, data: { status: "superseded", reason: why } });
  }

  /**
   * Repairs a crash between a commit and its jobs: SMS/voice deliveries still queued after `olderThanMs` get
   * their `deliver` job again, and open deliveries well past their tenant's timeout (their `timeout` job was
   * lost) fall back. Job ids make a re-add of a live job a no-op. Returns how many deliveries were touched.
   */
  async sweep(olderThanMs = 30_000): Promise<number> {
    const now = this.deps.clock.now();
    const rows = await this.deps.prisma.otpDelivery.findMany({
      where: { status: { in: OPEN }, createdAt: { lt: new Date(now.getTime() - olderThanMs) }, verification: { status: "pending" } },
      select: { id: true, channel: true, status: true, createdAt: true, verification: { select: { tenant: { select: { settings: true } } } } },
      orderBy: { createdAt: "asc" },
      take: 200,
    });
    let n = 0;
    for (const r of rows) {
      const timeoutMs = readSettings(r.verification.tenant.settings).otp.deliveryTimeoutSeconds * 1000;
      if (r.createdAt.getTime() + timeoutMs + olderThanMs < now.getTime()) {
        if (await this.fallBack(r.id, "no_delivery")) n++;
      } else if (r.channel !== "whatsapp" && r.status === "queued") {
        await this.deps.otpQueue.add("deliver", { deliveryId: r.id }, { ...jobOptions.otp, jobId: jobIds.otpDeliver(r.id) });
        n++;
      }
    }
    return n;
  }

  private async contactFor(tx: Tx, tenantId: string, phoneE164: string) {
    const waId = phoneE164.replace(/^\+/, "");
    const existing = await tx.contact.findFirst({
      where: { tenantId, OR: [{ waId }, { phoneE164 }] },
      orderBy: [{ lastInboundAt: { sort: "desc", nulls: "last" } }],
      select: { id: true, lastInboundAt: true },
    });
    if (existing) return existing;
    return tx.contact.upsert({
      where: { tenantId_waId: { tenantId, waId } },
      create: { tenantId, waId, phoneE164 },
      update: {},
      select: { id: true, lastInboundAt: true },
    });
  }

  private record(tx: Tx, post: PostCommit, e: EventInput): Promise<void> {
    return this.deps.events.record(tx, post, e);
  }
}

export interface SqlContact {
  id: string;
  lastInboundAt: Date | null;
}

// like contactFor: the contact with this number (the one that wrote last), else a new one; no lock on an existing row
const CONTACT_FIND_OR_CREATE = `WITH found AS (
  SELECT id, last_inbound_at FROM contacts
   WHERE tenant_id = $1::uuid AND (wa_id = $2::text OR phone_e164 = $3::text)
   ORDER BY last_inbound_at DESC NULLS LAST LIMIT 1
), created AS (
  INSERT INTO contacts (id, tenant_id, wa_id, phone_e164, updated_at)
  SELECT $4::uuid, $1::uuid, $2::text, $3::text, now() WHERE NOT EXISTS (SELECT 1 FROM found)
  ON CONFLICT (tenant_id, wa_id) DO NOTHING
  RETURNING id, last_inbound_at
)
SELECT id, last_inbound_at AS "lastInboundAt" FROM found UNION ALL SELECT id, last_inbound_at FROM created`;

// the outbox's row (src/messaging/outbox.ts INSERT_OUTBOUND), written in the caller's SQL transaction
const INSERT_OUTBOUND = `INSERT INTO messages (id, tenant_id, contact_id, direction, type, payload, status, timestamp, verification_id, updated_at)
VALUES ($1::uuid, $2::uuid, $3::uuid, 'outbound'::"Direction", $4::text, $5::jsonb, 'queued'::"MessageStatus", $6::timestamptz, $7::uuid, $8::timestamptz)`;

// step's conditional update for the code message's delivery (the first one, like findFirst), with what its event needs
const STEP_BY_MESSAGE = `UPDATE otp_deliveries d SET status = $2::text, updated_at = now()
  FROM verifications v JOIN tenants t ON t.id = v.tenant_id
 WHERE d.id = (SELECT id FROM otp_deliveries WHERE message_id = $1::uuid AND channel = 'whatsapp' LIMIT 1)
   AND d.status = ANY($3::text[]) AND v.id = d.verification_id
RETURNING d.channel, d.provider, v.id AS "verificationId", v.tenant_id AS "tenantId", v."to", v.purpose, t.settings::text AS settings`;

const INSERT_DELIVERY = `INSERT INTO otp_deliveries (id, verification_id, channel, provider, status, message_id, reason, updated_at)
VALUES ($1::uuid, $2::uuid, $3::text, $4::text, 'queued', $5::uuid, $6::text, now())`;

/** The tenant's template for the locale, then for its default locale, then the environment's. */
/**
 * The authentication template as the contract shows it: the code in the body and in the copy-code button, here as
 * the placeholder that `resolveContent` fills in at send time (nothing secret is stored).
 */
export function codeTemplate(template: { name: string; language: string }): OutboundContent {
  return {
    type: "template",
    template: {
      name: template.name,
      language: { code: template.language },
      components: [
        { type: "body", parameters: [{ type: "text", text: OTP_PLACEHOLDER }] },
        { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: OTP_PLACEHOLDER }] },
      ],
    },
  };
}

export function chooseTemplate(
  settings: TenantSettings,
  locale: string,
  config: Pick<Config, "WHATSAPP_OTP_TEMPLATE" | "WHATSAPP_OTP_TEMPLATE_LANGUAGE">,
): { name: string; language: string } {
  const t = settings.otp.templates[locale] ?? settings.otp.templates[settings.otp.defaultLocale];
  return t ? { name: t.name, language: t.language } : { name: config.WHATSAPP_OTP_TEMPLATE, language: config.WHATSAPP_OTP_TEMPLATE_LANGUAGE };
}

/** The first available channel after `current` in the tenant's order (or, if `current` is not in it, any other). */
export function nextChannel(order: readonly Channel[], current: Channel, available: (c: Channel) => boolean): Channel | null {
  const i = order.indexOf(current);
  const rest = i >= 0 ? order.slice(i + 1) : order.filter((c) => c !== current);
  return rest.find(available) ?? null;
}

/** A deep copy of `value` with every string equal to the placeholder replaced by `code`. */
export function fillPlaceholder(value: unknown, code: string): unknown {
  if (value === OTP_PLACEHOLDER) return code;
  if (Array.isArray(value)) return value.map((v) => fillPlaceholder(v, code));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, fillPlaceholder(v, code)]));
  }
  return value;
}
