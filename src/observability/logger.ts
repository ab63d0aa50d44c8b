import pino, { type Logger } from "pino";

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

export function createLogger(opts: { level: string; pretty?: boolean; name?: string; destination?: pino.DestinationStream }): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    name: opts.name,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { pid: process.pid },
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
