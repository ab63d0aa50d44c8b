import express, { Router, type ErrorRequestHandler } from "express";
import type { Ingest } from "../ingest/ingest";
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
    const outcome = await deps.ingest(raw, req.headers["x-hub-signature-256"]);
    switch (outcome.kind) {
      case "accepted":
        count("accepted"); // ops
        res.status(200).json({ ok: true, messages: outcome.messages, statuses: outcome.statuses });
        return;
      case "verification_failed":
        count("invalid_signature"); // ops
        deps.logger.warn({ ip: req.ip }, "webhook with a missing or wrong signature rejected");
        sendError(res, 401, "invalid_signature", "X-Hub-Signature-256 is missing or does not match the body");
        return;
      case "invalid_json":
        count("invalid_json"); // ops
        sendError(res, 400, "invalid_json", "The body is not valid JSON");
        return;
      case "invalid_envelope":
        count("invalid_envelope"); // ops
        sendError(res, 400, "invalid_envelope", `Not a WhatsApp webhook envelope: ${outcome.message}`);
        return;
      case "enqueue_failed":
        count("unavailable"); // ops
        deps.logger.error({ err: outcome.error }, "webhook could not be handed off; answering 503 so Meta redelivers");
        sendError(res, 503, "unavailable", "The webhook could not be stored; retry later", undefined, { "Retry-After": "5" });
        return;
    }
  });
  // ops: a body over the limit never reaches the handler; count it, then the app's error handler answers 413
  const tooLarge: ErrorRequestHandler = (err, req, _res, next) => {
    if (req.method === "POST" && (err as { type?: unknown })?.type === "entity.too.large") count("too_large");
    next(err);
  };
  router.use("/webhook", tooLarge);

  return router;
}
