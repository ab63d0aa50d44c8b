import { createHash } from "node:crypto";
import express, { Router, type Request, type Response } from "express";
import { recordAudit } from "../audit/audit";
import type { PrismaClient } from "../db/prisma";
import { PIN_RESET_PATH, PIN_RESET_TOKEN_RE, invalidatePinResetTokens, pinResetTokenHashes } from "../journeys/pin.actions";
import type { Logger } from "../observability/logger";
import type { PinService } from "../pin/pin.service";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { sendError } from "./errors";

/**
 * The PIN reset link emailed by the `request_pin_reset` action: `GET /pin-reset/{token}` shows a one-button page,
 * `POST /pin-reset/{token}` (form or JSON) consumes the token and removes the contact's PIN.
 *
 * - GET never changes anything (mail scanners and link previews fetch links); only the POST uses the token.
 * - The token is the secret and works once, so the form carries no CSRF token; a browser's `Origin`, when sent,
 *   must be this service's own (PUBLIC_BASE_URL's origin, or the request's host when that is not set).
 * - Consuming is one conditional UPDATE (used_at IS NULL AND expires_at > now … RETURNING) in the transaction that
 *   removes the PIN: two clicks at once remove it once, and the second answers 410.
 * - Unknown, expired and used tokens get the same 410 page (or JSON error): the answer tells nothing about which.
 * - Pages are self-contained (no external assets, no scripts), `no-store`, `no-referrer` (the URL holds the
 *   token), not frameable; the token is never written into the page (the form posts to the page's own URL).
 * - Nothing logs the token or the path that holds it.
 */
export interface PinResetRoutesDeps {
  prisma: PrismaClient;
  pins: PinService;
  keyring: Keyring;
  clock: Clock;
  logger: Logger;
  /** PUBLIC_BASE_URL: its origin is the one a browser's Origin header must carry */
  publicBaseUrl?: string;
}

const STYLE =
  "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2933;line-height:1.5}" +
  "h1{font-size:1.4rem}button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:.4rem;background:#128c7e;color:#fff;cursor:pointer}";
const STYLE_HASH = createHash("sha256").update(STYLE).digest("base64");
const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy": `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "X-Robots-Tag": "noindex, nofollow",
};

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

const CONFIRM_PAGE = page(
  "Reset your PIN",
  `<h1>Reset your PIN</h1>
<p>This removes the PIN of your WhatsApp two-step verification. You can then set a new one in the chat.</p>
<form method="post"><button type="submit">Reset my PIN</button></form>
<p>If you did not ask for this, close this page: nothing changes.</p>`,
);
const DONE_PAGE = page("PIN removed", `<h1>PIN removed</h1>\n<p>Your PIN was removed; set a new one in the chat.</p>`);
const GONE_PAGE = page(
  "Link no longer valid",
  `<h1>This link is no longer valid</h1>\n<p>It has expired or was already used. Ask for a new one in the chat.</p>`,
);
const FORBIDDEN_PAGE = page("Not allowed", `<h1>Not allowed</h1>\n<p>Open the link from your email and press the button there.</p>`);
const ERROR_PAGE = page("Something went wrong", `<h1>Something went wrong</h1>\n<p>Please try the link again in a moment.</p>`);

const GONE = { code: "link_gone", message: "This PIN reset link has expired or was already used" };

function wantsJson(req: Request): boolean {
  if (req.method === "POST" && req.is("application/json")) return true;
  return req.accepts(["html", "json"]) === "json";
}

function html(res: Response, status: number, body: string): void {
  res.status(status).set(SECURITY_HEADERS).type("html").send(body);
}

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

export function pinResetRoutes(deps: PinResetRoutesDeps): Router {
  const router = Router();
  const log = deps.logger.child({ component: "pin-reset" });
  const allowedOrigin = deps.publicBaseUrl ? originOf(deps.publicBaseUrl) : null;
  const body = [express.urlencoded({ extended: false, limit: "2kb" }), express.json({ limit: "2kb" })];

  const gone = (req: Request, res: Response) => {
    if (wantsJson(req)) {
      res.set(SECURITY_HEADERS);
      return sendError(res, 410, GONE.code, GONE.message);
    }
    html(res, 410, GONE_PAGE);
  };
  const failed = (req: Request, res: Response, err: unknown) => {
    // no path: it holds the token
    log.error({ err: err instanceof Error ? err.message : String(err), method: req.method }, "pin reset failed");
    if (wantsJson(req)) {
      res.set(SECURITY_HEADERS);
      return sendError(res, 500, "internal_error", "Something went wrong on our side");
    }
    html(res, 500, ERROR_PAGE);
  };
  const sameOrigin = (req: Request): boolean => {
    const origin = req.get("origin");
    if (origin === undefined) return true; // not a browser form post (or an old browser): the token alone decides
    const expected = allowedOrigin ?? `${req.protocol}://${req.get("host") ?? ""}`;
    return origin === expected;
  };

  router.get(`${PIN_RESET_PATH}/:token`, async (req, res) => {
    const token = req.params.token;
    if (!PIN_RESET_TOKEN_RE.test(token)) return gone(req, res);
    try {
      const now = deps.clock.now();
      const live = await deps.prisma.pinResetToken.findFirst({
        where: { tokenHash: { in: pinResetTokenHashes(deps.keyring, token) }, usedAt: null, expiresAt: { gt: now } },
        select: { id: true },
      });
      if (!live) return gone(req, res);
      if (wantsJson(req)) {
        res.set(SECURITY_HEADERS);
        return res.status(200).json({ valid: true });
      }
      html(res, 200, CONFIRM_PAGE);
    } catch (err) {
      failed(req, res, err);
    }
  });

  router.post(`${PIN_RESET_PATH}/:token`, ...body, async (req, res) => {
    const token = req.params.token as string;
    if (!sameOrigin(req)) {
      log.warn({ reason: "cross_origin" }, "pin reset refused");
      if (wantsJson(req)) {
        res.set(SECURITY_HEADERS);
        return sendError(res, 403, "forbidden", "Cross-origin requests are not accepted");
      }
      return html(res, 403, FORBIDDEN_PAGE);
    }
    if (!PIN_RESET_TOKEN_RE.test(token)) return gone(req, res);
    try {
      const now = deps.clock.now();
      const tokenHashes = pinResetTokenHashes(deps.keyring, token);
      const used = await deps.prisma.$transaction(async (tx) => {
        const rows = await tx.$queryRaw<{ tenant_id: string; contact_id: string }[]>`
          UPDATE pin_reset_tokens SET used_at = ${now}::timestamptz
           WHERE token_hash = ANY(${tokenHashes}::text[]) AND used_at IS NULL AND expires_at > ${now}::timestamptz
       RETURNING tenant_id::text, contact_id::text`;
        const row = rows[0];
        if (!row) return null;
        await deps.pins.remove(tx, row.contact_id);
        await invalidatePinResetTokens(tx, row.contact_id, now);
        await recordAudit(tx, { tenantId: row.tenant_id, type: "pin.removed", actor: "customer", subject: row.contact_id, data: { via: "email_link" }, at: now });
        return row;
      });
      if (!used) return gone(req, res);
      log.info({ tenantId: used.tenant_id, contactId: used.contact_id }, "pin removed through the reset link");
      if (wantsJson(req)) {
        res.set(SECURITY_HEADERS);
        return res.status(200).json({ removed: true, message: "Your PIN was removed; set a new one in the chat." });
      }
      html(res, 200, DONE_PAGE);
    } catch (err) {
      failed(req, res, err);
    }
  });

  return router;
}
