import express, { type NextFunction, type Request, type Response } from "express";
import { z } from "zod";
import { faultSchema } from "./faults";
import { injectInputSchema } from "./inbound";
import type { SandboxStore } from "./store";
import { templateStatusInputSchema, type TemplateStatusInput } from "./template-statuses";
import { wabaIdOf } from "./envelope";
import { messagingLimitInputSchema, type MessagingLimitInput } from "./messaging-limits";
import type { Fault, InjectInput, SandboxPhoneNumber } from "./types";

export interface ControlDeps {
  store: SandboxStore;
  phones: SandboxPhoneNumber[];
  inject: (input: InjectInput) => Promise<{ wamid: string; status: number }>;
  addFault: (f: Fault) => void;
  clearFaults: () => void;
  /** sets a template's status for a number's WABA and sends the webhook; resolves with the bot's HTTP status (null: none sent) */
  setTemplateStatus?: (phone: SandboxPhoneNumber, input: TemplateStatusInput) => Promise<number | null>;
  /** sets a number's messaging-limit tier and sends phone_number_quality_update (webhookStatus: the bot's HTTP status, null: none sent) */
  setMessagingLimit?: (phone: SandboxPhoneNumber, input: MessagingLimitInput) => Promise<{ oldTier: string; event: string; webhookStatus: number | null }>;
}

/** Open server-sent-event streams; close() ends them so servers can shut down. */
export class EventStreams {
  private readonly open = new Set<Response>();

  attach(req: Request, res: Response, store: SandboxStore): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write(": connected\n\n");
    const names = ["message", "status", "request", "webhook"] as const;
    const listeners = names.map((name) => {
      const fn = (data: unknown) => {
        if (!res.writableEnded && !res.destroyed) res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      store.events.on(name, fn);
      return [name, fn] as const;
    });
    this.open.add(res);
    res.on("close", () => {
      for (const [name, fn] of listeners) store.events.off(name, fn);
      this.open.delete(res);
    });
  }

  close(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }
}

const queryPhone = z.object({ phoneNumberId: z.string().min(1).optional() });

function badRequest(res: Response, error: z.ZodError): void {
  res.status(400).json({ error: { code: "invalid_request", message: error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ") } });
}

/** The business number a control request names (the first one when it names none), or a 404 answered. */
function businessNumber(deps: ControlDeps, res: Response, phoneNumberId: string | undefined): SandboxPhoneNumber | undefined {
  const phone = phoneNumberId ? deps.phones.find((p) => p.phoneNumberId === phoneNumberId) : deps.phones[0];
  if (!phone) res.status(404).json({ error: { code: "unknown_phone_number", message: `no business number ${phoneNumberId}` } });
  return phone;
}

/** The control API under /sandbox/api: JSON in, JSON out, zod-validated. */
export function controlRouter(deps: ControlDeps, streams: EventStreams): express.Router {
  const router = express.Router();
  router.use(express.json({ limit: "1mb" }));

  router.get("/config", (_req, res) => {
    res.json({ phoneNumbers: deps.phones.map((p) => ({ phoneNumberId: p.phoneNumberId, displayPhoneNumber: p.displayPhoneNumber })) });
  });
  router.post("/inbound", async (req, res) => {
    const parsed = injectInputSchema.safeParse(req.body ?? {});
    if (!parsed.success) return badRequest(res, parsed.error);
    if (!businessNumber(deps, res, parsed.data.phoneNumberId)) return;
    res.status(201).json(await deps.inject(parsed.data));
  });
  router.post("/faults", (req, res) => {
    const parsed = faultSchema.safeParse(req.body ?? {});
    if (!parsed.success) return badRequest(res, parsed.error);
    deps.addFault(parsed.data);
    res.status(201).json({ fault: parsed.data });
  });
  router.delete("/faults", (_req, res) => {
    deps.clearFaults();
    res.json({ cleared: true });
  });
  router.get("/conversations/:customer", (req, res) => {
    const q = queryPhone.safeParse(req.query);
    if (!q.success) return badRequest(res, q.error);
    res.json({ messages: deps.store.conversation(String(req.params.customer), q.data.phoneNumberId) });
  });
  router.get("/customers", (_req, res) => {
    res.json({ customers: deps.store.customerList().map((c) => ({ phone: c.phone ? `+${c.phone}` : null, userId: c.userId ?? null, profileName: c.profileName ?? null })) });
  });
  router.post("/templates/status", async (req, res) => {
    const parsed = templateStatusInputSchema.safeParse(req.body ?? {});
    if (!parsed.success) return badRequest(res, parsed.error);
    const phone = businessNumber(deps, res, parsed.data.phoneNumberId);
    if (!phone) return;
    if (!deps.setTemplateStatus) return res.status(501).json({ error: { code: "not_supported", message: "template statuses are not supported here" } });
    const webhookStatus = await deps.setTemplateStatus(phone, parsed.data);
    const { name, language, status } = parsed.data;
    res.json({ wabaId: wabaIdOf(phone), name, language, status, webhookStatus });
  });
  router.post("/messaging-limit", async (req, res) => {
    const parsed = messagingLimitInputSchema.safeParse(req.body ?? {});
    if (!parsed.success) return badRequest(res, parsed.error);
    const phone = businessNumber(deps, res, parsed.data.phoneNumberId);
    if (!phone) return;
    if (!deps.setMessagingLimit) return res.status(501).json({ error: { code: "not_supported", message: "messaging limits are not supported here" } });
    const out = await deps.setMessagingLimit(phone, parsed.data);
    res.json({ phoneNumberId: phone.phoneNumberId, wabaId: wabaIdOf(phone), tier: parsed.data.tier, ...out });
  });
  router.get("/requests", (_req, res) => res.json({ requests: deps.store.requests }));
  router.get("/webhooks", (_req, res) => res.json({ webhooks: deps.store.webhooks }));
  router.get("/events", (req, res) => streams.attach(req, res, deps.store));
  router.use((_req, res) => res.status(404).json({ error: { code: "not_found", message: "no such sandbox route" } }));
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const status = err instanceof SyntaxError ? 400 : 500;
    res.status(status).json({ error: { code: status === 400 ? "invalid_json" : "internal", message: status === 400 ? "body is not valid JSON" : "sandbox error" } });
  });
  return router;
}
