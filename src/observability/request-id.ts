import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import { withRequestId, type Logger } from "./logger";
import { runWithRequestId } from "./request-context";

export const REQUEST_ID_HEADER = "X-Request-Id";

/** What a caller's id may look like: 1 to 64 characters, letters, digits and `._:-` (no spaces, no quotes, no CR/LF). */
const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

declare module "express-serve-static-core" {
  interface Request {
    /** the request id (the caller's X-Request-Id when it is safe, else a new UUID) */
    id?: string;
  }
  interface Locals {
    /** set by requestId(): the request's id */
    requestId?: string;
    /** set by requestId(): the app's logger with `reqId` bound (absent on apps without the middleware) */
    log?: Logger;
  }
}

/** Returns the caller's id when it is safe to log and echo, else undefined. */
export function acceptRequestId(value: unknown): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === "string" && SAFE_ID.test(v) ? v : undefined;
}

/**
 * The first middleware: every request gets an id, taken from `X-Request-Id` when the caller (a load balancer, the
 * business's server) sends a safe one, else a new UUID. The id is echoed in the `X-Request-Id` response header
 * and bound to a pino child logger at `res.locals.log`, so every line a handler logs for the request carries
 * `reqId`. The rest of the request runs with the id as the current request id (request-context.ts): lines any
 * logger writes meanwhile carry it, and so do the queue jobs it leads to (the webhook's inbound and status jobs,
 * the outbound jobs of replies and codes), down to the Cloud API call's `X-Request-Id` header.
 */
export function requestId(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const id = acceptRequestId(req.headers["x-request-id"]) ?? randomUUID();
    req.id = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    res.locals.requestId = id;
    res.locals.log = withRequestId(logger, id);
    runWithRequestId(id, next);
  };
}
