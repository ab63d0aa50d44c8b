import type { Request, RequestHandler } from "express";
import { sendError } from "../../http/errors";
import { safeEqual } from "../../shared/crypto";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function isStateChanging(req: Request): boolean {
  return !SAFE_METHODS.has(req.method);
}

/**
 * True when a state-changing request comes from this site: its Origin (or, without one, Referer) names this host.
 * A browser always sends Origin on a cross-site POST; with neither header (curl, scripts) the other checks decide.
 */
export function sameOrigin(req: Request): boolean {
  const host = req.get("host");
  const source = req.get("origin") ?? req.get("referer");
  if (req.get("sec-fetch-site") && !["same-origin", "none"].includes(req.get("sec-fetch-site")!)) return false;
  if (!source) return true;
  if (source === "null") return false;
  try {
    return new URL(source).host === host;
  } catch {
    return false;
  }
}

/** Refuses a cross-site state-changing request (403 cross_origin). */
export const originCheck: RequestHandler = (req, res, next) => {
  if (isStateChanging(req) && !sameOrigin(req)) return sendError(res, 403, "cross_origin", "This request comes from another site");
  next();
};

/** Refuses a state-changing request without the session's CSRF token in X-CSRF-Token (403 csrf_failed). */
export function csrfToken(expected: (req: Request) => string | undefined): RequestHandler {
  return (req, res, next) => {
    if (!isStateChanging(req)) return next();
    const given = req.get("x-csrf-token");
    const want = expected(req);
    if (!given || !want || !safeEqual(given, want)) return sendError(res, 403, "csrf_failed", "The CSRF token is missing or wrong: reload the console");
    next();
  };
}
