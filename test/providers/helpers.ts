import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/observability/logger";
import type { CodeMessage } from "../../src/providers/ports";

export const ACCOUNT_SID = "AC" + "0123456789abcdef".repeat(2);
export const AUTH_TOKEN = "standin-auth-token-0123456789abcdef";
export const FROM = "+15017122661";
export const TO = "+14155550123";
export const CODE = "482910";

export function codeMessage(overrides: Partial<CodeMessage> = {}): CodeMessage {
  return { to: TO, code: CODE, locale: "en_US", brand: "Acme", expiryMinutes: 10, reference: "dlv_test_1", ...overrides };
}

/** A logger whose lines are kept, so tests can check that no code, token or full number is ever written. */
export function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: createLogger({ level: "debug", destination }), lines };
}

export const silentLogger = (): Logger => createLogger({ level: "silent" });
