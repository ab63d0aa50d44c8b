import helmet from "helmet";
import type { RequestHandler } from "express";

/**
 * Security headers for the browser pages (/sandbox, /console): a strict Content-Security-Policy (scripts, styles,
 * images and connections from this origin only: no inline script, nothing from a CDN), no framing, no referrer to other sites,
 * no MIME sniffing. `Secure`-only upgrades are left to the proxy that terminates TLS (HSTS off on plain http).
 */
export function pageSecurity(opts: { inlineStyles?: boolean } = {}): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": opts.inlineStyles ? ["'self'", "'unsafe-inline'"] : ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
      },
    },
    strictTransportSecurity: false,
    referrerPolicy: { policy: "same-origin" },
    crossOriginEmbedderPolicy: false,
  });
}

/** No caching of pages and JSON that carry session data. */
export const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader("Cache-Control", "no-store");
  next();
};
