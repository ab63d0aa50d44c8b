import express, { Router, type ErrorRequestHandler } from "express";
import type { Ingest, IngestOutcome } from "../ingest/ingest";
import type { Logger } from "../observability/logger";
import type { Metrics, WebhookOutcome } from "../observability/metrics"; // ops
import { safeEqual } from "../shared/crypto";
import { sendError } from "./errors";

/**
 * Meta's webhook: the subscription handshake (GET) and notifications (POST). The POST body is read as raw bytes
 * (the signature covers them) and handed to the framework-free ingest; its outcome is mapped to a status here.
 */
export function webhookRoutes(deps: { ingest: Ingest; verifyToken: string; bodyLimitBytes: number; logger: Logger; metrics?: Pick<Metrics, "webhookRequests"> }): Router {
  const router = Router();
  // ops: wabot_webhook_requests_total{outcome}
  const count = (outcome: WebhookOutcome) => deps.metrics?.webhookRequests.inc({ outcome });

  router.get("/webhook", (req, res) => {
    const mode = req.query["hub.mode"];
    const token = req.query["hub.verify_token"];
    const challenge = req.query["hub.challenge"];
    if (mode === "subscribe" && typeof token === "string" && typeof challenge === "string" && safeEqual(token, deps.verifyToken)) {
      res.status(200).type("text/plain").send(challenge);
      return;
    }
    sendError(res, 403, "verification_failed", "hub.mode must be subscribe and hub.verify_token must match");
  });

  router.post("/webhook", express.raw({ type: () => true, limit: deps.bodyLimitBytes }), async (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    // the request id (X-Request-Id) rides in the jobs: the workers' log lines and the replies' sends carry it
    const outcome = await deps.ingest(raw, req.headers["x-hub-signature-256"], { requestId: res.locals.requestId });
    const answer = webhookAnswer(outcome, deps.logger, () => req.ip);
    count(answer.metric); // ops
    for (const [k, v] of Object.entries(answer.headers)) res.setHeader(k, v);
    res.status(answer.status).json(answer.body);
  });
  // ops: a body over the limit never reaches the handler; count it, then the app's error handler answers 413
  const tooLarge: ErrorRequestHandler = (err, req, _res, next) => {
    if (req.method === "POST" && (err as { type?: unknown })?.type === "entity.too.large") count("too_large");
    next(err);
  };
  router.use("/webhook", tooLarge);

  return router;
}

/** What the webhook answers for one ingest outcome: the same for the Express route and the lean handler (lean-webhook.ts). */
export interface WebhookAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string>;
  metric: WebhookOutcome;
}

/** Maps an ingest outcome to its answer (status, JSON body, headers, metric), logging as the outcome needs. */
export function webhookAnswer(outcome: IngestOutcome, logger: Logger, ip: () => string | undefined): WebhookAnswer {
  const error = (status: number, metric: WebhookOutcome, code: string, message: string, headers: Record<string, string> = {}): WebhookAnswer => ({
    status, metric, headers, body: { error: { code, message } },
  });
  switch (outcome.kind) {
    case "accepted":
      return { status: 200, metric: "accepted", headers: {}, body: { ok: true, messages: outcome.messages, statuses: outcome.statuses } };
    case "verification_failed":
      logger.warn({ ip: ip() }, "webhook with a missing or wrong signature rejected");
      return error(401, "invalid_signature", "invalid_signature", "X-Hub-Signature-256 is missing or does not match the body");
    case "invalid_json":
      return error(400, "invalid_json", "invalid_json", "The body is not valid JSON");
    case "invalid_envelope":
      return error(400, "invalid_envelope", "invalid_envelope", `Not a WhatsApp webhook envelope: ${outcome.message}`);
    case "enqueue_failed":
      logger.error({ err: outcome.error }, "webhook could not be handed off; answering 503 so Meta redelivers");
      return error(503, "unavailable", "unavailable", "The webhook could not be stored; retry later", { "Retry-After": "5" });
  }
}
