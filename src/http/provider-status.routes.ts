import express, { Router } from "express";
import { z } from "zod";
import type { Logger } from "../observability/logger";
import type { ProviderStatusUpdate } from "../providers/ports";
import { verifyTwilioSignature } from "../providers/twilio/signature";
import { TWILIO_STATUS_PATH } from "../providers/twilio/status-callback";
import { sendError } from "./errors";

/**
 * Twilio's status callbacks for code SMS and calls: `POST /providers/twilio/status`, form-encoded, signed with
 * X-Twilio-Signature over the exact URL Twilio called (our PUBLIC_BASE_URL + the path and query) and the POST
 * parameters (https://www.twilio.com/docs/usage/webhooks/webhooks-security). Behind a proxy the Host and scheme we
 * see are not what Twilio signed, so the URL is rebuilt from the configured public base, never from the request.
 *
 * Messages carry MessageSid + MessageStatus (+ ErrorCode when it failed); calls carry CallSid + CallStatus
 * (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks,
 * https://www.twilio.com/docs/voice/api/call-resource#statuscallback). Twilio adds parameters without notice, so
 * unknown ones are accepted (and still covered by the signature).
 *
 * Answers: 204 (Twilio ignores the body of a status-callback answer), 403 bad signature, 400 not a status
 * callback, 500 when onStatus fails.
 */
export interface ProviderStatusRoutesDeps {
  authToken: string;
  /** PUBLIC_BASE_URL: scheme, host and any path prefix Twilio uses to reach us */
  publicBaseUrl: string;
  onStatus: (u: ProviderStatusUpdate) => Promise<void>;
  logger: Logger;
}

const sid = (prefixes: string) => z.string().regex(new RegExp(`^(${prefixes})[0-9a-fA-F]{32}$`), "not a Twilio SID");
const status = z.string().regex(/^[a-z_-]{1,40}$/, "not a status value");

export const twilioStatusSchema = z
  .looseObject({
    AccountSid: sid("AC").optional(),
    MessageSid: sid("SM|MM").optional(),
    MessageStatus: status.optional(),
    CallSid: sid("CA").optional(),
    CallStatus: status.optional(),
    ErrorCode: z.string().regex(/^\d{1,10}$/, "must be a number").optional(),
  })
  .refine((b) => (b.MessageSid !== undefined && b.MessageStatus !== undefined) || (b.CallSid !== undefined && b.CallStatus !== undefined), {
    message: "expected MessageSid with MessageStatus, or CallSid with CallStatus",
  });

export type TwilioStatusBody = z.infer<typeof twilioStatusSchema>;

/**
 * Message statuses (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values):
 * queued/sent → sent; delivered (and read, for channels with read receipts) → delivered; failed/undelivered/canceled →
 * failed. accepted, scheduled, sending… are steps before `sent`: nothing to report (null).
 */
export function mapMessageStatus(value: string): ProviderStatusUpdate["status"] | null {
  switch (value) {
    case "queued":
    case "sent":
      return "sent";
    case "delivered":
    case "read":
      return "delivered";
    case "failed":
    case "undelivered":
    case "canceled":
      return "failed";
    default:
      return null;
  }
}

/**
 * Call statuses (https://www.twilio.com/docs/voice/api/call-resource#call-status-values): completed → delivered
 * (answered and the script played; it may have been voicemail); busy, no-answer, failed, canceled → failed;
 * queued/initiated/ringing/in-progress → sent.
 */
export function mapCallStatus(value: string): ProviderStatusUpdate["status"] | null {
  switch (value) {
    case "completed":
      return "delivered";
    case "busy":
    case "no-answer":
    case "failed":
    case "canceled":
      return "failed";
    case "queued":
    case "initiated":
    case "ringing":
    case "in-progress":
      return "sent";
    default:
      return null;
  }
}

/** The update for a validated callback, or null when the status is one we do not report. */
export function toStatusUpdate(body: TwilioStatusBody): ProviderStatusUpdate | null {
  if (body.MessageSid !== undefined && body.MessageStatus !== undefined) {
    const mapped = mapMessageStatus(body.MessageStatus);
    if (!mapped) return null;
    return { provider: "twilio", providerRef: body.MessageSid, status: mapped, ...(mapped === "failed" && body.ErrorCode ? { errorCode: body.ErrorCode } : {}) };
  }
  if (body.CallSid !== undefined && body.CallStatus !== undefined) {
    const mapped = mapCallStatus(body.CallStatus);
    if (!mapped) return null;
    // a call that was not answered has no ErrorCode; its CallStatus (busy, no-answer…) is the reason
    return { provider: "twilio", providerRef: body.CallSid, status: mapped, ...(mapped === "failed" ? { errorCode: body.ErrorCode ?? body.CallStatus } : {}) };
  }
  return null;
}

export function providerStatusRoutes(deps: ProviderStatusRoutesDeps): Router {
  const router = Router();
  const base = deps.publicBaseUrl.replace(/\/+$/, "");

  router.post(TWILIO_STATUS_PATH, express.urlencoded({ extended: false, limit: "64kb", type: "application/x-www-form-urlencoded" }), async (req, res) => {
    const params = (req.body && typeof req.body === "object" ? req.body : {}) as Record<string, string | string[]>;
    const url = base + req.originalUrl;
    if (!verifyTwilioSignature(deps.authToken, req.headers["x-twilio-signature"], url, params)) {
      deps.logger.warn({ ip: req.ip }, "Twilio status callback with a missing or wrong signature rejected");
      sendError(res, 403, "invalid_signature", "X-Twilio-Signature is missing or does not match the URL and parameters");
      return;
    }
    const parsed = twilioStatusSchema.safeParse(params);
    if (!parsed.success) {
      sendError(res, 400, "invalid_status_callback", "Not a Twilio message or call status callback", parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })));
      return;
    }
    const update = toStatusUpdate(parsed.data);
    const log = { providerRef: parsed.data.MessageSid ?? parsed.data.CallSid, twilioStatus: parsed.data.MessageStatus ?? parsed.data.CallStatus, errorCode: parsed.data.ErrorCode };
    if (!update) {
      deps.logger.debug(log, "Twilio status not reported");
      res.status(204).end();
      return;
    }
    try {
      await deps.onStatus(update);
    } catch (err) {
      deps.logger.error({ ...log, err: err instanceof Error ? err.message : String(err) }, "Twilio status could not be recorded");
      sendError(res, 500, "internal_error", "The status could not be recorded");
      return;
    }
    deps.logger.info({ ...log, status: update.status }, "Twilio status recorded");
    res.status(204).end();
  });

  return router;
}
