import { StepUpError } from "../tenants/step-up";
import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import type { Logger } from "../observability/logger";
import { OtpError } from "../otp/errors";

/** An expected failure with a stable snake_case code, mapped to a status once, here. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function sendError(res: Response, status: number, code: string, message: string, details?: unknown, headers: Record<string, string> = {}): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.status(status).json({ error: { code, message, ...(details === undefined ? {} : { details }) } });
}

export const notFound: RequestHandler = (req, res) => {
  sendError(res, 404, "not_found", `No route for ${req.method} ${req.path}`);
};

/** The last middleware: JSON for every error, never an HTML page or a stack trace. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) return;
    if (err instanceof ApiError) return sendError(res, err.status, err.code, err.message, err.details, err.headers);
    if (err instanceof StepUpError) return sendError(res, err.status, err.code, err.message, err.details);
    if (err instanceof OtpError) {
      return sendError(res, err.status, err.code, err.message, undefined, err.retryAfterSeconds ? { "Retry-After": String(err.retryAfterSeconds) } : {});
    }
    if (isRedisDown(err)) return sendError(res, 503, "unavailable", "A backing service is unavailable; retry later", undefined, { "Retry-After": "5" });
    // PostgreSQL refuses U+0000 in text and jsonb: a NUL in a request's text is the caller's error, not ours
    if (isNulRefused(err)) return sendError(res, 400, "invalid_text", "Text must not contain the NUL character (\\u0000)");
    // body-parser errors carry a status and a type
    const type = typeof err?.type === "string" ? err.type : undefined;
    if (type === "entity.too.large") return sendError(res, 413, "payload_too_large", "The request body is larger than this endpoint accepts");
    if (type === "entity.parse.failed") return sendError(res, 400, "invalid_json", "The request body is not valid JSON");
    if (type === "encoding.unsupported" || type === "charset.unsupported") return sendError(res, 415, "unsupported_encoding", "Unsupported body encoding");
    if (type === "request.aborted") return sendError(res, 400, "request_aborted", "The request was aborted");
    const status = typeof err?.status === "number" && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 500) logger.error({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err), path: req.path }, "unhandled error");
    sendError(res, status, status === 500 ? "internal_error" : "bad_request", status === 500 ? "Something went wrong on our side" : "The request could not be processed");
  };
}

/** PostgreSQL's refusal of U+0000 (text: 22021 "invalid byte sequence … 0x00"; jsonb: 22P05), as Prisma or pg report it. */
function isNulRefused(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e?.code === "22P05" || e?.code === "22021") return true;
  const m = typeof e?.message === "string" ? e.message : "";
  return /`22P05`|`22021`|unsupported Unicode escape sequence|invalid byte sequence for encoding "UTF8": 0x00/.test(m);
}

/** ioredis errors when Redis is unreachable and the connection does not queue commands. */
function isRedisDown(err: unknown): boolean {
  const m = err instanceof Error ? err.message : "";
  return /Stream isn't writeable|enableOfflineQueue|Connection is closed|ECONNREFUSED|Command timed out/i.test(m);
}
