import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { createLogger } from "../observability/logger";
import { systemClock } from "../shared/clock";
import { chatPageRoutes } from "../web/sandbox/chat-page.routes";
import { CloudApi } from "./cloud-api";
import { controlRouter, EventStreams } from "./control-routes";
import { FaultBook } from "./faults";
import { graphRouter, HeldResponses } from "./graph-routes";
import { InboundInjector } from "./inbound";
import { metaJson } from "./meta-json";
import { StatusScheduler } from "./status-scheduler";
import { TemplateStatusBook, templateStatusEnvelope } from "./template-statuses";
import { SandboxStore } from "./store";
import { SandboxMessagingLimits } from "./messaging-limits";
import { DEFAULT_TEMPLATES } from "./templates";
import type { Sandbox, SandboxOptions } from "./types";
import { WebhookSender } from "./webhook-sender";

export type * from "./types";

/**
 * A local stand-in for Meta's WhatsApp Cloud API: Graph send / mark-as-read routes with Meta's validation and error
 * JSON, signed inbound and status webhooks with Meta's retry rule, fault injection, a control API and a chat page.
 */
export function createSandbox(opts: SandboxOptions): Sandbox {
  if (opts.phoneNumbers.length === 0) throw new Error("sandbox: at least one phone number is required");
  const logger = opts.logger ?? createLogger({ level: "silent", name: "sandbox" });
  const clock = opts.clock ?? systemClock;
  const phones = opts.phoneNumbers;
  let webhookUrl = opts.webhookUrl;

  const store = new SandboxStore();
  const faults = new FaultBook();
  const sender = new WebhookSender({
    appSecret: opts.appSecret,
    url: () => webhookUrl,
    retry: opts.webhookRetry ?? { attempts: 5, baseDelayMs: 200 },
    logger,
    record: (w) => store.addWebhook(w),
    agent: opts.webhookAgent,
  });
  const statuses = new StatusScheduler({
    store,
    sender,
    delays: { sent: opts.statusDelaysMs?.sent ?? 5, delivered: opts.statusDelaysMs?.delivered ?? 15, read: opts.statusDelaysMs?.read ?? 40 },
    autoRead: opts.autoRead ?? true,
    clock,
    logger,
  });
  const templateStatuses = new TemplateStatusBook();
  const api = new CloudApi({ phones, templates: opts.templates ?? DEFAULT_TEMPLATES, store, faults, statuses, clock, templateStatuses });
  const injector = new InboundInjector({ phones, store, sender, clock });
  const messagingLimits = new SandboxMessagingLimits(phones); // tiers: Graph GET and phone_number_quality_update
  const held = new HeldResponses();
  const streams = new EventStreams();
  const servers = new Set<Server>();

  const injectInbound: Sandbox["injectInbound"] = async (input) => {
    const { wamids, status } = await injector.inject([input]);
    return { wamid: wamids[0]!, status };
  };

  const app = express();
  app.disable("x-powered-by");
  app.use(chatPageRoutes());
  app.use(
    "/sandbox/api",
    controlRouter({
      store, phones, inject: injectInbound, addFault: (f) => faults.add(f), clearFaults: () => faults.clear(),
      // a template's status at "Meta": later sends of it fail like Meta's, and the signed status webhook goes out
      setTemplateStatus: async (phone, input) => {
        templateStatuses.set(phone, input.name, input.language, input.status);
        return input.webhook ? sender.deliver(metaJson(templateStatusEnvelope(phone, input, clock.now().getTime())), "raw") : null;
      },
      // a number's messaging-limit tier; the signed phone_number_quality_update webhook goes out
      setMessagingLimit: async (phone, input) => {
        const { oldTier, event, envelope } = messagingLimits.set(phone, input, clock.now().getTime());
        return { oldTier, event, webhookStatus: envelope ? await sender.deliver(metaJson(envelope), "raw") : null };
      },
    }, streams),
  );
  app.use(graphRouter(api, store, held, messagingLimits));

  const close = async (): Promise<void> => {
    statuses.close();
    sender.close();
    held.close();
    streams.close();
    await Promise.all(
      [...servers].map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    servers.clear();
  };

  return {
    app,
    events: store.events,
    addPhoneNumber(phone) {
      const known = phones.find((p) => p.phoneNumberId === phone.phoneNumberId);
      if (known) Object.assign(known, phone);
      else phones.push({ ...phone });
    },
    async listen(port = 0, host = "127.0.0.1") {
      const server = createServer(app);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve());
      });
      servers.add(server);
      const { port: actual } = server.address() as AddressInfo;
      const url = `http://${host.includes(":") ? `[${host}]` : host}:${actual}`;
      logger.info({ url }, "sandbox listening");
      return {
        url,
        close: () =>
          new Promise<void>((resolve) => {
            servers.delete(server);
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      };
    },
    setWebhookUrl(url) {
      webhookUrl = url;
    },
    injectInbound,
    injectBatch: (inputs) => injector.inject(inputs),
    postWebhook: (envelope) => sender.deliver(metaJson(envelope), "raw"),
    addFault: (f) => faults.add(f),
    clearFaults: () => faults.clear(),
    conversation: (customer, phoneNumberId) => store.conversation(customer, phoneNumberId),
    requests: () => [...store.requests],
    webhooks: () => [...store.webhooks],
    close,
  };
}
