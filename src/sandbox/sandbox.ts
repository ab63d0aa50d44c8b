import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { createLogger } from "../observability/logger";
import { systemClock } from "../shared/clock";
import { CHAT_PAGE } from "./chat-page";
import { CloudApi } from "./cloud-api";
import { controlRouter, EventStreams } from "./control-routes";
import { FaultBook } from "./faults";
import { graphRouter, HeldResponses } from "./graph-routes";
import { InboundInjector } from "./inbound";
import { metaJson } from "./meta-json";
import { StatusScheduler } from "./status-scheduler";
import { SandboxStore } from "./store";
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
  });
  const statuses = new StatusScheduler({
    store,
    sender,
    delays: { sent: opts.statusDelaysMs?.sent ?? 5, delivered: opts.statusDelaysMs?.delivered ?? 15, read: opts.statusDelaysMs?.read ?? 40 },
    autoRead: opts.autoRead ?? true,
    clock,
    logger,
  });
  const api = new CloudApi({ phones, templates: opts.templates ?? DEFAULT_TEMPLATES, store, faults, statuses, clock });
  const injector = new InboundInjector({ phones, store, sender, clock });
  const held = new HeldResponses();
  const streams = new EventStreams();
  const servers = new Set<Server>();

  const injectInbound: Sandbox["injectInbound"] = async (input) => {
    const { wamids, status } = await injector.inject([input]);
    return { wamid: wamids[0]!, status };
  };

  const app = express();
  app.disable("x-powered-by");
  app.get("/sandbox", (_req, res) => {
    res.type("html").send(CHAT_PAGE);
  });
  app.use(
    "/sandbox/api",
    controlRouter({ store, phones, inject: injectInbound, addFault: (f) => faults.add(f), clearFaults: () => faults.clear() }, streams),
  );
  app.use(graphRouter(api, store, held));

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
