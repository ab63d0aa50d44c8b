import pino, { type Logger } from "pino";
import { currentRequestId } from "./request-context";

export type { Logger };

/**
 * Paths that may carry secrets or personal data; pino replaces them before a line is written.
 * Codes, tokens and message bodies are never logged on purpose; this is the net under that rule.
 */
export const REDACT_PATHS = [
  "accessToken",
  "*.accessToken",
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  'headers["x-hub-signature-256"]',
  "otp",
  "*.otp",
  "pin",
  "*.pin",
  "text",
  "*.text",
  "body",
  "*.body",
  "payload",
  "*.payload",
  "secret",
  "*.secret",
  "apiKey",
  "*.apiKey",
];

/** Set on a logger (and so inherited by its children) whose bindings already carry `reqId`. */
const BOUND_REQUEST_ID = Symbol("reqId bound");

/**
 * A child of `logger` with `reqId` bound. Its lines (and its children's) carry that id even outside the request's
 * async context, and the mixin below does not add a second one.
 */
export function withRequestId(logger: Logger, requestId: string | undefined): Logger {
  if (!requestId) return logger;
  const child = logger.child({ reqId: requestId });
  (child as unknown as Record<symbol, boolean>)[BOUND_REQUEST_ID] = true;
  return child;
}

/**
 * Every line written while a request or a job with a request id is in progress (request-context.ts) carries that
 * id as `reqId`, whichever logger writes it: services, handlers and workers need not pass it along.
 */
function requestIdMixin(_obj: object, _level: number, logger: Logger): object {
  const reqId = currentRequestId();
  return reqId && !(logger as unknown as Record<symbol, boolean>)[BOUND_REQUEST_ID] ? { reqId } : {};
}

export function createLogger(opts: { level: string; pretty?: boolean; name?: string; destination?: pino.DestinationStream }): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    name: opts.name,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { pid: process.pid },
    mixin: requestIdMixin,
  };
  if (opts.destination) return pino(options, opts.destination);
  if (opts.pretty) {
    return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true, ignore: "pid,hostname" } } });
  }
  return pino(options);
}

/** Masks a phone number for logs: +4477•••••23. */
export function maskPhone(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const v = value.replace(/\s+/g, "");
  if (v.length <= 6) return "•".repeat(v.length);
  return `${v.slice(0, 5)}${"•".repeat(Math.max(0, v.length - 7))}${v.slice(-2)}`;
}
