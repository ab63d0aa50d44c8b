import express, { Router, type Request } from "express";
import { z } from "zod";
import { recordAudit, listAudit, InvalidAuditQueryError } from "../audit/audit";
import { Prisma, type PrismaClient } from "../db/prisma";
import { getCallback, InvalidCallbackUrlError, rotateSecret, setCallback, validateCallbackUrl, type EventPublisher } from "../events/publisher";
import { OtpError } from "../otp/errors";
import { normalizeNumber } from "../otp/phone";
import { eraseContact, findContactByNumber } from "../retention/erase";
import type { Keyring } from "../shared/crypto";
import { ApiKeys, SCOPES } from "../tenants/api-keys";
import { tenantSettingsSchema, readSettings } from "../tenants/settings";
import { adminNumberSchema } from "../tenants/admin-number";
import { securityChanges } from "../tenants/settings-security";
import type { TenantDirectory } from "../tenants/tenant-directory";
import type { ApplyResult, StepUp } from "../tenants/step-up";
import { assertTenantAccess, requireScope, requireSuperAdmin } from "./auth";
import { ApiError } from "./errors";
import { parseInput } from "./validate";

const uuid = z.uuid();
const wabaId = z.string().regex(/^\d{1,32}$/, "the numeric WhatsApp Business Account id");
const appSecret = z.string().regex(/^[0-9a-f]{32}$/i, "Meta app secrets are 32 hex characters");
const accessToken = z.string().min(10).max(4096);

const tenantBody = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  phoneNumberId: z.string().regex(/^\d{1,32}$/, "the numeric phone number id"),
  displayPhoneNumber: z
    .string()
    .regex(/^\+?[\d\s().-]{5,30}$/, "the displayed number: digits, optionally with +, spaces or dashes")
    .transform((v) => v.replace(/\D/g, "")),
  accessToken,
  /** the WABA id (webhook entry.id): routes template and account updates; learnt from webhooks when left out */
  wabaId: wabaId.optional(),
  /** this number's Meta app secret, when its app is not the deployment's (WHATSAPP_APP_SECRET) */
  appSecret: appSecret.optional(),
  /** where step-up codes for this tenant's security-sensitive admin changes go */
  adminNumber: adminNumberSchema.optional(),
  settings: z.unknown().optional(),
});

const tenantPatch = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  wabaId: wabaId.nullable().optional(),
});

const keyBody = z.strictObject({
  scopes: z.array(z.enum(SCOPES)).min(1).default(["verify"]),
  name: z.string().max(100).optional(),
});

/** A partial settings document: each section given replaces that section (validated in full, with defaults). */
const settingsPatch = z.strictObject({
  otp: z.unknown().optional(),
  phonePolicy: z.unknown().optional(),
  limits: z.unknown().optional(),
  flows: z.unknown().optional(),
  pin: z.unknown().optional(),
  retention: z.unknown().optional(),
});


type TenantRow = {
  id: string; name: string; phoneNumberId: string; displayPhoneNumber: string; settings: unknown; createdAt: Date; updatedAt: Date;
  wabaId: string | null; adminNumber: string | null; appSecretEnc: string | null; tokenRotatedAt: Date | null;
  messagingLimitTier: string | null; messagingLimitCheckedAt: Date | null;
};

function tenantView(t: TenantRow) {
  const settings = readSettings(t.settings);
  return {
    id: t.id,
    name: t.name,
    phoneNumberId: t.phoneNumberId,
    displayPhoneNumber: t.displayPhoneNumber,
    wabaId: t.wabaId,
    adminNumber: t.adminNumber,
    hasOwnAppSecret: t.appSecretEnc !== null,
    tokenRotatedAt: t.tokenRotatedAt?.toISOString() ?? null,
    messagingLimit: { tier: t.messagingLimitTier, checkedAt: t.messagingLimitCheckedAt?.toISOString() ?? null },
    settings: { otp: settings.otp, phonePolicy: settings.phonePolicy, limits: settings.limits, flows: settings.flows, pin: settings.pin, retention: settings.retention, events: { url: settings.events.url ?? null, hasSecret: Boolean(settings.events.secretEnc) } },
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
  };
}

/**
 * The admin API: tenants (super-admin: the environment's ADMIN_API_KEY), API keys, settings, the events
 * callback and the audit trail. A tenant's own admin key reaches only its own tenant; another tenant's id is 404.
 */
export function adminRoutes(deps: {
  prisma: PrismaClient;
  keyring: Keyring;
  apiKeys: ApiKeys;
  tenants: TenantDirectory;
  /** for the events delivery log's replay */
  eventPublisher?: Pick<EventPublisher, "replay">;
  /** holds security-sensitive changes of tenant keys until a code is confirmed (src/tenants/step-up.ts) */
  stepUp: StepUp;
  /** the webhook's per-tenant app secrets cache, refreshed when one changes */
  webhookSecrets?: { invalidate(): void };
  /** told of each new tenant and each token rotation (the demo registers them with its Cloud API sandbox) */
  onTenantCreated?: (t: { phoneNumberId: string; displayPhoneNumber: string; accessToken: string; wabaId?: string }) => void;
  /** development mode (config isDevMode): an events callback may be plain http to a loopback host */
  dev?: boolean;
}): Router {
  const { prisma, keyring, apiKeys, stepUp } = deps;
  const router = Router();
  router.use(express.json({ limit: "256kb" }));

  // how each held action is applied, now (break-glass) or after its code is confirmed
  stepUp.register("tenant.rotate_token", async (tenantId, payload, actor) => {
    const token = String(payload.accessToken);
    const t = await prisma.tenant.update({ where: { id: tenantId }, data: { accessTokenEnc: keyring.encrypt("tenant-token", token), tokenRotatedAt: new Date() } });
    deps.tenants.invalidate();
    deps.onTenantCreated?.({ phoneNumberId: t.phoneNumberId, displayPhoneNumber: t.displayPhoneNumber, accessToken: token, wabaId: t.wabaId ?? undefined });
    await recordAudit(prisma, { tenantId, type: "tenant.token_rotated", actor, data: {}, at: new Date() });
    return { status: 200, body: { id: tenantId, tokenRotatedAt: t.tokenRotatedAt?.toISOString() ?? null } };
  });
  stepUp.register("tenant.set_app_secret", async (tenantId, payload, actor) => {
    const secret = payload.appSecret === null ? null : String(payload.appSecret);
    await prisma.tenant.update({ where: { id: tenantId }, data: { appSecretEnc: secret === null ? null : keyring.encrypt("tenant-token", secret) } });
    deps.tenants.invalidate();
    deps.webhookSecrets?.invalidate();
    await recordAudit(prisma, { tenantId, type: "tenant.app_secret_changed", actor, data: { ownApp: secret !== null }, at: new Date() });
    return { status: 200, body: { id: tenantId, hasOwnAppSecret: secret !== null } };
  });
  stepUp.register("tenant.set_admin_number", async (tenantId, payload, actor) => {
    const number = payload.number === null ? null : String(payload.number);
    await prisma.tenant.update({ where: { id: tenantId }, data: { adminNumber: number } });
    await recordAudit(prisma, { tenantId, type: "tenant.admin_number_changed", actor, data: { set: number !== null }, at: new Date() });
    return { status: 200, body: { id: tenantId, adminNumber: number } };
  });
  stepUp.register("api_key.create", async (tenantId, payload, actor) => {
    const body = keyBody.parse(payload);
    const key = await apiKeys.create(tenantId, body.scopes, body.name);
    await recordAudit(prisma, { tenantId, type: "api_key.created", actor, data: { keyId: key.id, scopes: key.scopes }, at: new Date() });
    const shown = { ...key, tenantId, createdAt: key.createdAt.toISOString() };
    // the key is shown once, in this answer; the held change keeps only its id
    return { status: 201, body: shown, stored: { id: key.id, prefix: key.prefix, scopes: key.scopes } };
  });
  // settings that guard codes, numbers, money or the network (src/tenants/settings-security.ts); phone_policy: older rows
  const applyHeldSettings = async (tenantId: string, payload: Record<string, unknown>, actor: string): Promise<ApplyResult> => {
    const t = await prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    const updated = await applySettingsPatch(t, payload, actor);
    return { status: 200, body: tenantView(updated), stored: { sections: Object.keys(payload) } };
  };
  stepUp.register("settings.phone_policy", applyHeldSettings);
  stepUp.register("settings.security", applyHeldSettings);
  stepUp.register("tenant.set_waba_id", async (tenantId, payload, actor) => {
    const body = tenantPatch.parse(payload);
    const updated = await updateTenant(tenantId, body, actor);
    return { status: 200, body: tenantView(updated), stored: { fields: Object.keys(body) } };
  });
  stepUp.register("events.callback", async (tenantId, payload, actor) => {
    try {
      const result = await setCallback(prisma, keyring, tenantId, (payload.url as string | null) ?? null, { dev: deps.dev === true });
      await recordAudit(prisma, { tenantId, type: "tenant.events_callback_changed", actor, data: { url: result.url }, at: new Date() });
      return { status: 200, body: result as unknown as Record<string, unknown>, stored: { url: result.url } };
    } catch (err) {
      if (err instanceof InvalidCallbackUrlError) throw new ApiError(400, "invalid_callback_url", err.message);
      throw err;
    }
  });
  stepUp.register("events.rotate_secret", async (tenantId, _payload, actor) => {
    const result = await rotateSecret(prisma, keyring, tenantId);
    await recordAudit(prisma, { tenantId, type: "tenant.events_secret_rotated", actor, data: {}, at: new Date() });
    return { status: 200, body: result as unknown as Record<string, unknown>, stored: {} };
  });

  async function applySettingsPatch(t: TenantRow, patch: Record<string, unknown>, actor: string) {
    const next = mergeSettings(readSettings(t.settings), patch);
    const updated = await prisma.tenant.update({ where: { id: t.id }, data: { settings: next as Prisma.InputJsonValue } });
    deps.tenants.invalidate();
    await recordAudit(prisma, { tenantId: t.id, type: "tenant.settings_changed", actor, data: { sections: Object.keys(patch) }, at: new Date() });
    return updated;
  }

  /** runs a sensitive change through step-up and answers what it answered (202 when held) */
  async function held(req: Request, res: express.Response, tenantId: string, action: Parameters<StepUp["run"]>[2], payload: Record<string, unknown>) {
    const result = await stepUp.run(req.principal!, tenantId, action, payload);
    res.status(result.status).json(result.body);
  }

  /** the tenant a request may act on: super-admin any, a tenant key only its own */
  async function tenantFor(req: Request, id: string) {
    const p = req.principal!;
    assertTenantAccess(p, id);
    const t = await prisma.tenant.findUnique({ where: { id } });
    if (!t) throw new ApiError(404, "tenant_not_found", "No such tenant");
    return t;
  }
  const audit = (req: Request, tenantId: string | null, type: string, data: Record<string, unknown> = {}) =>
    recordAudit(prisma, { tenantId, type, actor: req.principal!.actor, data, at: new Date() });

  router.get("/tenants", requireScope("read"), async (req, res) => {
    const p = req.principal!;
    const rows = await prisma.tenant.findMany({ where: p.superAdmin ? {} : { id: p.tenantId }, orderBy: { createdAt: "asc" } });
    res.json({ tenants: rows.map(tenantView) });
  });

  router.post("/tenants", requireSuperAdmin(), async (req, res) => {
    const body = parseInput(tenantBody, req.body);
    // the events callback has its own route (URL checks, secret generation): not settable here
    const { events: _ignored, ...given } = (body.settings ?? {}) as Record<string, unknown>;
    const settings = parseSettings(given);
    try {
      const t = await prisma.tenant.create({
        data: {
          name: body.name ?? body.displayPhoneNumber,
          phoneNumberId: body.phoneNumberId,
          displayPhoneNumber: body.displayPhoneNumber,
          accessTokenEnc: keyring.encrypt("tenant-token", body.accessToken),
          tokenRotatedAt: new Date(),
          wabaId: body.wabaId,
          appSecretEnc: body.appSecret ? keyring.encrypt("tenant-token", body.appSecret) : undefined,
          adminNumber: body.adminNumber,
          settings: settings as Prisma.InputJsonValue,
        },
      });
      deps.tenants.invalidate();
      if (body.appSecret) deps.webhookSecrets?.invalidate();
      deps.onTenantCreated?.({ phoneNumberId: t.phoneNumberId, displayPhoneNumber: t.displayPhoneNumber, accessToken: body.accessToken, wabaId: t.wabaId ?? undefined });
      await audit(req, t.id, "tenant.created", { phoneNumberId: t.phoneNumberId });
      res.status(201).json(tenantView(t));
    } catch (err) {
      if ((err as { code?: string }).code === "P2002") throw new ApiError(409, "tenant_exists", "A tenant with this phoneNumberId exists");
      throw err;
    }
  });

  router.get("/tenants/:id", requireScope("read"), async (req, res) => {
    res.json(tenantView(await tenantFor(req, req.params.id as string)));
  });

  /** name and WABA id; a WABA id change refreshes the webhook scopes (which secret may speak for which WABA) */
  async function updateTenant(tenantId: string, body: z.infer<typeof tenantPatch>, actor: string) {
    const updated = await prisma.tenant.update({ where: { id: tenantId }, data: { name: body.name, wabaId: body.wabaId } });
    deps.tenants.invalidate();
    if (body.wabaId !== undefined) deps.webhookSecrets?.invalidate();
    await recordAudit(prisma, { tenantId, type: "tenant.updated", actor, data: { fields: Object.keys(body) }, at: new Date() });
    return updated;
  }

  router.patch("/tenants/:id", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const body = parseInput(tenantPatch, req.body);
    const p = req.principal!;
    // the WABA id decides whose account-level webhooks (template status, quality, tier) a tenant receives and, with
    // its own app secret, may sign: a tenant key never claims another tenant's, and its own change is held
    if (!p.superAdmin && body.wabaId !== undefined && body.wabaId !== t.wabaId) {
      if (body.wabaId !== null && (await prisma.tenant.count({ where: { wabaId: body.wabaId, id: { not: t.id } } })) > 0) {
        throw new ApiError(409, "waba_id_taken", "This WhatsApp Business Account belongs to another business: only the operator can assign it");
      }
      return held(req, res, t.id, "tenant.set_waba_id", body);
    }
    res.json(tenantView(await updateTenant(t.id, body, p.actor)));
  });

  router.patch("/tenants/:id/settings", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const patch = parseInput(settingsPatch, req.body);
    // the whole patch is validated first (a refused change sends no code); a change to a setting that guards
    // something (test numbers, attempts, limits, costs and budgets, the country policy, the HTTP allow-list…) is
    // held for step-up like the other security changes, with the rest of its patch
    const current = readSettings(t.settings);
    const changed = securityChanges(current, mergeSettings(current, patch));
    if (changed.length > 0) return held(req, res, t.id, "settings.security", patch);
    res.json(tenantView(await applySettingsPatch(t, patch, req.principal!.actor)));
  });

  router.put("/tenants/:id/access-token", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const body = parseInput(z.strictObject({ accessToken }), req.body);
    await held(req, res, t.id, "tenant.rotate_token", body);
  });

  router.put("/tenants/:id/app-secret", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const body = parseInput(z.strictObject({ appSecret: appSecret.nullable() }), req.body);
    await held(req, res, t.id, "tenant.set_app_secret", body);
  });

  router.put("/tenants/:id/admin-number", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const body = parseInput(z.strictObject({ number: adminNumberSchema.nullable() }), req.body);
    // a tenant key changes it only with a code sent to the CURRENT admin number (none set: only the break-glass key)
    await held(req, res, t.id, "tenant.set_admin_number", body);
  });

  router.put("/tenants/:id/events", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const body = parseInput(z.strictObject({ url: z.string().max(2048).nullable() }), req.body);
    // a URL that could not be set is refused now, before any code goes out
    if (body.url !== null) {
      const check = validateCallbackUrl(body.url, { dev: deps.dev === true });
      if (!check.ok) throw new ApiError(400, "invalid_callback_url", check.reason);
    }
    await held(req, res, t.id, "events.callback", body);
  });

  router.get("/tenants/:id/events", requireScope("read"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    res.json(await getCallback(prisma, t.id));
  });

  router.post("/tenants/:id/events/rotate-secret", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    await held(req, res, t.id, "events.rotate_secret", {});
  });

  router.post("/tenants/:id/api-keys", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const body = parseInput(keyBody, req.body);
    await held(req, res, t.id, "api_key.create", body);
  });

  // step-up: the held changes, confirmed with the code sent to the admin number, or canceled
  router.get("/step-ups", requireScope("read"), async (req, res) => {
    const p = req.principal!;
    const q = parseInput(z.object({ tenantId: z.uuid().optional(), status: z.enum(["pending", "applying", "applied", "canceled", "expired", "failed"]).optional() }), req.query);
    const tenantId = p.superAdmin ? (q.tenantId ?? p.tenantId) : p.tenantId;
    res.json({ stepUps: await stepUp.list(tenantId, q.status) });
  });

  router.get("/step-ups/:id", requireScope("read"), async (req, res) => {
    res.json(await stepUp.get(req.principal!, req.params.id as string));
  });

  router.post("/step-ups/:id/confirm", requireScope("admin"), async (req, res) => {
    const { code } = parseInput(z.strictObject({ code: z.string().regex(/^\d{4,10}$/, "the code is 4-10 digits") }), req.body);
    const done = await stepUp.confirm(req.principal!, req.params.id as string, code);
    res.status(done.status).json({ stepUp: done.stepUp, result: done.body });
  });

  router.post("/step-ups/:id/cancel", requireScope("admin"), async (req, res) => {
    res.json(await stepUp.cancel(req.principal!, req.params.id as string));
  });

  router.get("/tenants/:id/api-keys", requireScope("read"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const rows = await prisma.apiKey.findMany({ where: { tenantId: t.id }, orderBy: { createdAt: "asc" } });
    res.json({
      apiKeys: rows.map((k) => ({ id: k.id, name: k.name, prefix: k.prefix, scopes: k.scopes, createdAt: k.createdAt, lastUsedAt: k.lastUsedAt, revokedAt: k.revokedAt })),
    });
  });

  router.delete("/api-keys/:id", requireScope("admin"), async (req, res) => {
    const id = req.params.id as string;
    const p = req.principal!;
    const row = uuid.safeParse(id).success ? await prisma.apiKey.findUnique({ where: { id } }) : null;
    if (!row || (!p.superAdmin && row.tenantId !== p.tenantId)) throw new ApiError(404, "api_key_not_found", "No such API key");
    await apiKeys.revoke(id);
    await audit(req, row.tenantId, "api_key.revoked", { keyId: id });
    res.json({ id, revoked: true });
  });

  // the events delivery log: what was sent to the tenant's callback, how it went, and a replay
  router.get("/tenants/:id/event-deliveries", requireScope("read"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const q = parseInput(z.object({ status: z.enum(["pending", "delivered", "failed"]).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }), req.query);
    const rows = await prisma.eventDelivery.findMany({
      where: { tenantId: t.id, ...(q.status ? { status: q.status } : {}) },
      orderBy: { createdAt: "desc" },
      take: q.limit,
    });
    res.json({
      deliveries: rows.map((r) => ({
        id: r.id, type: r.type, status: r.status, attempts: r.attempts, lastStatus: r.lastStatus, lastError: r.lastError,
        createdAt: r.createdAt, deliveredAt: r.deliveredAt, payload: r.payload,
      })),
    });
  });

  router.post("/tenants/:id/event-deliveries/:deliveryId/replay", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const deliveryId = req.params.deliveryId as string;
    if (!uuid.safeParse(deliveryId).success || !deps.eventPublisher || !(await deps.eventPublisher.replay(t.id, deliveryId))) {
      throw new ApiError(404, "event_delivery_not_found", "No such event delivery");
    }
    await audit(req, t.id, "event.replayed", { deliveryId });
    res.status(202).json({ id: deliveryId, status: "pending" });
  });

  // right to erasure: the contact's personal data goes, its rows (and so the counts) stay; see src/retention/erase.ts
  router.post("/tenants/:id/contacts/erase", requireScope("admin"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    const { to } = parseInput(z.strictObject({ to: z.string().trim().min(1).max(32) }), req.body);
    let e164: string;
    try {
      e164 = normalizeNumber(/^\d/.test(to) ? `+${to}` : to).e164;
    } catch (err) {
      if (err instanceof OtpError) throw new ApiError(400, err.code, err.message);
      throw err;
    }
    const contact = await findContactByNumber(prisma, t.id, e164);
    const erased = contact ? await eraseContact(prisma, t.id, contact.id, req.principal!.actor) : null;
    if (!erased) throw new ApiError(404, "contact_not_found", "No contact with this number");
    res.json({ erased: true, contactId: erased.contactId });
  });

  router.get("/audit", requireScope("read"), async (req, res) => {
    const p = req.principal!;
    const q = parseInput(
      z.object({
        tenantId: z.uuid().optional(),
        verificationId: z.uuid().optional(),
        type: z.string().max(100).optional(),
        since: z.iso.datetime().optional(),
        until: z.iso.datetime().optional(),
        limit: z.coerce.number().int().min(1).max(500).default(100),
        cursor: z.string().max(200).optional(),
      }),
      req.query,
    );
    const tenantId = p.superAdmin ? (q.tenantId ?? p.tenantId) : p.tenantId;
    const result = await listAudit(prisma, {
      tenantId,
      verificationId: q.verificationId,
      type: q.type,
      since: q.since ? new Date(q.since) : undefined,
      until: q.until ? new Date(q.until) : undefined,
      limit: q.limit,
      cursor: q.cursor,
    }).catch((err) => {
      if (err instanceof InvalidAuditQueryError) throw new ApiError(400, "invalid_request", err.message);
      throw err;
    });
    res.json(result);
  });

  return router;
}

/** Each section given is merged into the current one (fields left out keep their values), then validated in full. */
function mergeSettings(current: ReturnType<typeof readSettings>, patch: Record<string, unknown>) {
  const merged: Record<string, unknown> = { ...current };
  for (const [section, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new ApiError(400, "invalid_request", `${section} must be an object`);
    merged[section] = { ...(current[section as keyof typeof current] as object), ...(value as object) };
  }
  return parseSettings(merged);
}

function parseSettings(raw: unknown) {
  const r = tenantSettingsSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new ApiError(
    422,
    "invalid_settings",
    "The settings are not valid",
    r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
  );
}
