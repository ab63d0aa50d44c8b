import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * How events to the business are signed (the Stripe scheme), and how the business checks them.
 *
 * Every POST carries
 *
 *     X-Wabot-Signature: t=1718000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
 *
 * where `t` is the Unix time (seconds) of sending and `v1` is the lower-case hex HMAC-SHA256 of the string
 * `"<t>.<raw request body>"`, keyed with the callback secret (the whole `whsec_…` string, as UTF-8 bytes). The
 * header may hold several `v1=` entries (one per secret while a secret is being rolled over); it matches if any
 * entry matches. Unknown schemes (a future `v2=`) are ignored.
 *
 * To check an event, on the receiving side:
 * 1. take the raw body bytes exactly as received (before any JSON parsing; in Express: `express.raw()`);
 * 2. `verifyEvent(secret, req.get("X-Wabot-Signature"), rawBody)` (or the same steps in any language): it
 *    recomputes the HMAC, compares in constant time and refuses a `t` more than 5 minutes from now (replays);
 * 3. answer 2xx quickly (within 5 s; redirects are not followed), then deduplicate on `X-Wabot-Event-Id` (the
 *    body's `id`): delivery is at-least-once and events may arrive out of order.
 * Anything other than 2xx is retried with exponential backoff (about 10 attempts over several hours).
 *
 * To accept two secrets during a rotation, pass both: `verifyEvent([newSecret, oldSecret], header, body)`.
 * This file depends on node:crypto only, so it can be copied as is.
 */
export const SIGNATURE_HEADER = "X-Wabot-Signature";
export const DEFAULT_TOLERANCE_SEC = 300;

export type VerifyResult = { ok: true; timestamp: number } | { ok: false; reason: "missing_header" | "malformed_header" | "timestamp_out_of_tolerance" | "no_matching_signature" };

function hmacHex(secret: string, timestampSec: number, body: string | Buffer): string {
  return createHmac("sha256", secret).update(`${timestampSec}.`).update(body).digest("hex");
}

/** The header value for `body` sent at `timestampSec`; several secrets give several v1 entries. */
export function signEvent(secret: string | readonly string[], body: string | Buffer, timestampSec: number): string {
  if (!Number.isSafeInteger(timestampSec) || timestampSec < 0) throw new Error("timestampSec must be a Unix time in whole seconds");
  const secrets = typeof secret === "string" ? [secret] : secret;
  if (secrets.length === 0 || secrets.some((s) => s.length === 0)) throw new Error("a signing secret is required");
  return [`t=${timestampSec}`, ...secrets.map((s) => `v1=${hmacHex(s, timestampSec, body)}`)].join(",");
}

/** Parses `t=…,v1=…[,v1=…]`; null if malformed. */
export function parseSignatureHeader(header: string): { timestamp: number; v1: string[] } | null {
  let timestamp: number | undefined;
  const v1: string[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) return null;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(value)) return null;
      timestamp = Number(value);
    } else if (key === "v1") {
      if (/^[0-9a-f]{64}$/i.test(value)) v1.push(value.toLowerCase());
    }
  }
  return timestamp === undefined ? null : { timestamp, v1 };
}

/**
 * Checks a signature header against the raw body. `now` defaults to the current time; `toleranceSec` bounds
 * how far `t` may be from it (either way).
 */
export function verifyEvent(
  secret: string | readonly string[],
  header: string | null | undefined,
  body: string | Buffer,
  opts: { toleranceSec?: number; now?: Date | number } = {},
): VerifyResult {
  if (!header) return { ok: false, reason: "missing_header" };
  const parsed = parseSignatureHeader(header);
  if (!parsed) return { ok: false, reason: "malformed_header" };
  const nowMs = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
  const tolerance = opts.toleranceSec ?? DEFAULT_TOLERANCE_SEC;
  if (Math.abs(Math.floor(nowMs / 1000) - parsed.timestamp) > tolerance) return { ok: false, reason: "timestamp_out_of_tolerance" };
  const secrets = (typeof secret === "string" ? [secret] : secret).filter((s) => s.length > 0);
  let matched = false;
  for (const s of secrets) {
    const expected = Buffer.from(hmacHex(s, parsed.timestamp, body), "hex");
    for (const candidate of parsed.v1) {
      // every pair is compared (no early exit), each in constant time
      if (timingSafeEqual(expected, Buffer.from(candidate, "hex"))) matched = true;
    }
  }
  return matched ? { ok: true, timestamp: parsed.timestamp } : { ok: false, reason: "no_matching_signature" };
}
