import { randomUUID } from "node:crypto";
import { Counter, type Registry } from "prom-client";
import { z } from "zod";
import { recordAudit } from "../audit/audit";
import type { Config } from "../config/env";
import { transaction, type PrismaClient } from "../db/prisma";
import { EventPublisher } from "../events/publisher";
import type { EventType } from "../events/types";
import type { Logger } from "../observability/logger";
import { BackgroundTasks } from "../shared/background";
import { systemClock, type Clock } from "../shared/clock";
import type { AccountUpdateHandler } from "./account-updates";
import { readSettings, type Channel, type TenantSettings } from "./settings";
import type { TenantRecord } from "./tenant-directory";

/**
 * WhatsApp template statuses (docs/templates.md): Meta's `message_template_status_update` webhook, kept per tenant
 * in `template_statuses` (unique tenant, name, language); alerts when a template the tenant uses stops or starts
 * being sendable; a per-process view of the unsendable ones for the code-delivery hot path.
 */

/** Meta's events after which a template cannot be sent (Meta answers 132015 paused, 132016 disabled, 132001 otherwise). */
export const UNSENDABLE_STATUSES = new Set(["PAUSED", "DISABLED", "REJECTED", "PENDING_DELETION", "DELETED", "ARCHIVED"]);
/** Meta's events after which a template can be sent again (FLAGGED: still approved, may be disabled later). */
export const SENDABLE_STATUSES = new Set(["APPROVED", "REINSTATED", "UNARCHIVED", "FLAGGED"]);

export function isUnsendable(status: string | null | undefined): boolean {
  return !!status && UNSENDABLE_STATUSES.has(status);
}

/**
 * The change's value (WA/webhooks/reference/message_template_status_update), read tolerantly: unknown fields pass,
 * the id may be a number or a string, the event word is upper-cased; `other_info` (title, description) and
 * `disable_info` are optional.
 */
export const templateStatusValueSchema = z.looseObject({
  event: z.string().trim().min(1).max(64).transform((s) => s.toUpperCase()),
  message_template_id: z.union([z.number(), z.string().max(64)]).nullish(),
  message_template_name: z.string().trim().min(1).max(512),
  message_template_language: z.string().trim().min(1).max(20),
  reason: z.string().max(500).nullish(),
  message_template_category: z.string().max(64).nullish(),
  other_info: z.looseObject({ title: z.string().max(500).nullish(), description: z.string().max(1000).nullish() }).nullish(),
});
export type TemplateStatusValue = z.output<typeof templateStatusValueSchema>;

/** The tenant's code templates: locale → template, as `chooseTemplate` (src/otp/delivery.planner.ts) picks them. */
export function codeTemplatesOf(
  settings: TenantSettings,
  config: Pick<Config, "WHATSAPP_OTP_TEMPLATE" | "WHATSAPP_OTP_TEMPLATE_LANGUAGE">,
): { locale: string; name: string; language: string; source: "settings" | "environment" }[] {
  const out: { locale: string; name: string; language: string; source: "settings" | "environment" }[] = Object.entries(settings.otp.templates).map(([locale, t]) => ({ locale, name: t.name, language: t.language, source: "settings" as const }));
  // a locale without its own template, and the default locale without one, use the environment's template
  if (!settings.otp.templates[settings.otp.defaultLocale]) {
    out.push({ locale: settings.otp.defaultLocale, name: config.WHATSAPP_OTP_TEMPLATE, language: config.WHATSAPP_OTP_TEMPLATE_LANGUAGE, source: "environment" });
  }
  return out;
}

/** The tenant's utility templates (settings flows.templates): key → locale → template. */
export function flowTemplatesOf(settings: TenantSettings): { key: string; locale: string; name: string; language: string }[] {
  return Object.entries(settings.flows.templates).flatMap(([key, byLocale]) =>
    Object.entries(byLocale).map(([locale, t]) => ({ key, locale, name: t.name, language: t.language })),
  );
}

const keyOf = (name: string, language: string) => `${name}\u0000${language}`;

/**
 * Which templates are unsendable, per tenant, for code delivery's synchronous SQL path (`planStatements`): a
 * snapshot of the unsendable rows of template_statuses. This process's own updates apply at once; another
 * process's are seen at the next reload, started (without waiting) by a read when the snapshot is older than
 * `maxAgeMs`. A stale answer only costs one doomed WhatsApp send: Meta answers 132015/132016, a permanent error,
 * and the code falls back like any failed delivery.
 */
export class TemplateHealth {
  private blocked = new Map<string, Map<string, string>>();
  private loadedAt = 0;
  private loading: Promise<void> | null = null;
  /** this process's own updates while a reload is under way: re-applied over its (possibly older) snapshot */
  private recent: { tenantId: string; name: string; language: string; status: string }[] = [];

  constructor(
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
    private readonly maxAgeMs = 2_000,
    private readonly background = new BackgroundTasks(),
    private readonly clock: Clock = systemClock,
  ) {}

  /** The unsendable status of this template for the tenant, or null (sendable or unknown). */
  blockedStatus(tenantId: string, name: string, language: string): string | null {
    if (this.clock.now().getTime() - this.loadedAt > this.maxAgeMs) void this.background.run(() => this.reload());
    return this.blocked.get(tenantId)?.get(keyOf(name, language)) ?? null;
  }

  /** Records a status this process stored (sendable ones clear the entry). */
  set(tenantId: string, name: string, language: string, status: string): void {
    if (this.loading) this.recent.push({ tenantId, name, language, status });
    this.apply(tenantId, name, language, status);
  }

  private apply(tenantId: string, name: string, language: string, status: string): void {
    let m = this.blocked.get(tenantId);
    if (isUnsendable(status)) {
      if (!m) this.blocked.set(tenantId, (m = new Map()));
      m.set(keyOf(name, language), status);
    } else {
      m?.delete(keyOf(name, language));
    }
  }

  /** Reads every unsendable row again (one query; concurrent callers share it). */
  reload(): Promise<void> {
    this.loading ??= (async () => {
      this.recent = [];
      try {
        const rows = await this.prisma.templateStatus.findMany({
          where: { status: { in: [...UNSENDABLE_STATUSES] } },
          select: { tenantId: true, name: true, language: true, status: true },
        });
        const next = new Map<string, Map<string, string>>();
        for (const r of rows) {
          let m = next.get(r.tenantId);
          if (!m) next.set(r.tenantId, (m = new Map()));
          m.set(keyOf(r.name, r.language), r.status);
        }
        this.blocked = next;
        for (const r of this.recent) this.apply(r.tenantId, r.name, r.language, r.status);
        this.loadedAt = this.clock.now().getTime();
      } catch (err) {
        this.loadedAt = this.clock.now().getTime(); // no retry storm: the next try after maxAgeMs
        this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "template statuses could not be reloaded: last snapshot kept");
      } finally {
        this.recent = [];
        this.loading = null;
      }
    })();
    return this.loading;
  }
}

export interface TemplateStatusDeps {
  prisma: PrismaClient;
  config: Pick<Config, "WHATSAPP_OTP_TEMPLATE" | "WHATSAPP_OTP_TEMPLATE_LANGUAGE">;
  logger: Logger;
  health: TemplateHealth;
  /** after commit: hands event rows to the events queue (EventPublisher.dispatch) */
  eventDispatch: (ids: string[]) => Promise<void>;
  /** whether this deployment can send codes on a channel (OtpDeliveryPlanner.available) */
  available: (c: Channel) => boolean;
  /** a Prometheus registry for wabot_template_status_changes_total */
  registry?: Registry;
  now?: () => Date;
}

export type TemplateUpdateResult = "invalid" | "unchanged" | "changed" | "alerted";

/**
 * The `message_template_status_update` handler (register with `accountUpdates.on(…)`). Per tenant of the WABA, in
 * one transaction under an advisory lock on (tenant, name, language): the stored status is compared with Meta's
 * event and only a real change is written, audited and (for a template the tenant uses) alerted. So a webhook
 * delivered twice, or a job retried, publishes once.
 */
export function templateStatusHandler(deps: TemplateStatusDeps): AccountUpdateHandler {
  const log = deps.logger.child({ component: "template-status" });
  const changes = deps.registry
    ? new Counter({ name: "wabot_template_status_changes_total", help: "Template status changes received from Meta, by new status and whether the tenant uses the template", labelNames: ["status", "used"], registers: [deps.registry] })
    : null;

  return async (tenant: TenantRecord, raw: Record<string, unknown>): Promise<TemplateUpdateResult> => {
    const parsed = templateStatusValueSchema.safeParse(raw);
    if (!parsed.success) {
      // retrying will not fix it: the job completes, the update is dropped
      log.warn({ tenantId: tenant.id, issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) }, "template status update not understood: dropped");
      return "invalid";
    }
    const v = parsed.data;
    const name = v.message_template_name;
    const language = v.message_template_language;
    const status = v.event;
    const reason = [v.reason, v.other_info?.title, v.other_info?.description].filter((s): s is string => !!s).join(": ").slice(0, 500) || null;
    const templateId = v.message_template_id === undefined || v.message_template_id === null ? null : String(v.message_template_id);
    const now = deps.now?.() ?? new Date();

    const settings = readSettings(tenant.settings);
    const verificationLocales = codeTemplatesOf(settings, deps.config).filter((t) => t.name === name && t.language === language).map((t) => t.locale);
    const flowTemplates = [...new Set(flowTemplatesOf(settings).filter((t) => t.name === name && t.language === language).map((t) => t.key))];
    const used = verificationLocales.length > 0 || flowTemplates.length > 0;

    const outcome = await transaction(deps.prisma, async (tx) => {
      await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`tpl:${tenant.id}:${name}:${language}`}, 7))::text AS l`;
      const prev = await tx.templateStatus.findUnique({ where: { tenantId_name_language: { tenantId: tenant.id, name, language } }, select: { status: true, reason: true } });
      if (prev && prev.status === status) return null; // a redelivery, a retry, or nothing new
      await tx.templateStatus.upsert({
        where: { tenantId_name_language: { tenantId: tenant.id, name, language } },
        create: { id: randomUUID(), tenantId: tenant.id, name, language, status, reason, metaTemplateId: templateId },
        update: { status, reason, ...(templateId ? { metaTemplateId: templateId } : {}) },
      });
      const previousStatus = prev?.status;
      const type = alertType(status, previousStatus);
      await recordAudit(tx, {
        tenantId: tenant.id,
        type: "template.status_changed",
        actor: "meta",
        subject: `${name}/${language}`,
        data: { name, language, status, ...(previousStatus ? { previousStatus } : {}), ...(reason ? { reason } : {}), verificationLocales, flowTemplates, alert: used && type ? type : null },
        at: now,
      });
      if (!used || !type) return { previousStatus, type: null, eventId: null, verificationDelivery: null };
      const verificationDelivery = verificationLocales.length === 0 ? "none" : type === "template.reinstated" ? "whatsapp" : fallbackWord(settings, deps.available);
      const eventId = await EventPublisher.publish(tx, {
        tenantId: tenant.id,
        type,
        now,
        data: {
          name, language, status, verificationLocales, flowTemplates, verificationDelivery,
          ...(previousStatus ? { previousStatus } : {}),
          ...(reason ? { reason } : {}),
          ...(templateId ? { templateId } : {}),
        },
      });
      return { previousStatus, type, eventId, verificationDelivery };
    });
    if (!outcome) {
      log.debug({ tenantId: tenant.id, name, language, status }, "template status unchanged: nothing to do");
      return "unchanged";
    }
    deps.health.set(tenant.id, name, language, status);
    changes?.inc({ status, used: String(used) });
    if (outcome.eventId) await deps.eventDispatch([outcome.eventId]);
    const info = { tenantId: tenant.id, name, language, status, previousStatus: outcome.previousStatus, reason: reason ?? undefined, verificationLocales, flowTemplates, verificationDelivery: outcome.verificationDelivery ?? undefined };
    if (outcome.type === "template.paused" || outcome.type === "template.disabled") {
      log.warn(info, outcome.verificationDelivery === "whatsapp_only"
        ? "a template in use is no longer sendable and no other code channel is configured: codes keep trying WhatsApp"
        : "a template in use is no longer sendable");
    } else {
      log.info(info, outcome.type ? "a template in use is sendable again" : "template status recorded");
    }
    return outcome.type ? "alerted" : "changed";
  };
}

/** The alert for a change, or null: into an unsendable status (from anything else), or out of one. */
function alertType(status: string, previous: string | undefined): Extract<EventType, `template.${string}`> | null {
  if (isUnsendable(status)) return status === "PAUSED" ? "template.paused" : "template.disabled";
  if (SENDABLE_STATUSES.has(status) && isUnsendable(previous)) return "template.reinstated";
  return null;
}

function fallbackWord(settings: TenantSettings, available: (c: Channel) => boolean): string {
  const next = settings.otp.channels.find((c) => c !== "whatsapp" && available(c));
  return next ? `fallback:${next}` : "whatsapp_only";
}

export interface CatalogueEntry {
  name: string;
  language: string;
  /** Meta's last known event for it, or "unknown" (no update received) */
  status: string;
  sendable: boolean;
  reason: string | null;
  updatedAt: string | null;
}

/**
 * What the tenant is configured to send, per locale, with Meta's last known status: the code template and the
 * utility templates (flows.templates); then every other template status received for the tenant.
 */
export async function templateCatalogue(
  prisma: PrismaClient,
  tenant: { id: string; settings: unknown },
  config: Pick<Config, "WHATSAPP_OTP_TEMPLATE" | "WHATSAPP_OTP_TEMPLATE_LANGUAGE">,
) {
  const settings = readSettings(tenant.settings);
  const rows = await prisma.templateStatus.findMany({ where: { tenantId: tenant.id }, orderBy: [{ name: "asc" }, { language: "asc" }] });
  const byKey = new Map(rows.map((r) => [keyOf(r.name, r.language), r]));
  const used = new Set<string>();
  const entry = (name: string, language: string): CatalogueEntry => {
    const k = keyOf(name, language);
    used.add(k);
    const r = byKey.get(k);
    return { name, language, status: r?.status ?? "unknown", sendable: !isUnsendable(r?.status), reason: r?.reason ?? null, updatedAt: r?.updatedAt.toISOString() ?? null };
  };
  const locales = new Map<string, { locale: string; codeTemplate: (CatalogueEntry & { source: string }) | null; flowTemplates: Record<string, CatalogueEntry> }>();
  const localeOf = (locale: string) => {
    let l = locales.get(locale);
    if (!l) locales.set(locale, (l = { locale, codeTemplate: null, flowTemplates: {} }));
    return l;
  };
  for (const t of codeTemplatesOf(settings, config)) localeOf(t.locale).codeTemplate = { ...entry(t.name, t.language), source: t.source };
  for (const t of flowTemplatesOf(settings)) localeOf(t.locale).flowTemplates[t.key] = entry(t.name, t.language);
  const others = rows
    .filter((r) => !used.has(keyOf(r.name, r.language)))
    .map((r) => ({ name: r.name, language: r.language, status: r.status, sendable: !isUnsendable(r.status), reason: r.reason, updatedAt: r.updatedAt.toISOString() }));
  return {
    defaultLocale: settings.otp.defaultLocale,
    locales: [...locales.values()].sort((a, b) => a.locale.localeCompare(b.locale)),
    others,
  };
}
