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

/**
 * Flow `http` steps' requests (docs/flows.md "The HTTP step's signed request") are signed with scheme `v2`, which
 * also covers the method and the request target, so a signature taken from one request is worth nothing on another
 * method, path or query:
 *
 *     X-Wabot-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256(secret, "<t>.<METHOD>.<path?query>.<raw body>")>
 *
 * `METHOD` is upper-case (`GET`, `POST`); `path?query` is the request target exactly as on the request line
 * (`/orders/A-17?x=1`, percent-encoding as sent; `?` and the query only when there is one); a GET's body is empty.
 * Test vector: secret `whsec_test_vector`, t `1718000000`, `GET`, `/orders/A-17%2F..%2Fadmin?q=a%26b`, empty body →
 * `v2=ab702e8766abd25d8832a0af3aadd4e96072d6f748f956160cc99206067e5237` (recomputed by test/attacks/http-step-url.test.ts).
 */
export interface SignedRequest {
  method: string;
  /** the request target: path and, when present, `?` and the query, as sent */
  pathAndQuery: string;
  body: string | Buffer;
}

function requestHmacHex(secret: string, timestampSec: number, req: SignedRequest): string {
  return createHmac("sha256", secret).update(`${timestampSec}.${req.method.toUpperCase()}.${req.pathAndQuery}.`).update(req.body).digest("hex");
}

/** The header value (`t=…,v2=…`) for a request sent at `timestampSec`. */
export function signRequest(secret: string | readonly string[], req: SignedRequest, timestampSec: number): string {
  if (!Number.isSafeInteger(timestampSec) || timestampSec < 0) throw new Error("timestampSec must be a Unix time in whole seconds");
  const secrets = typeof secret === "string" ? [secret] : secret;
  if (secrets.length === 0 || secrets.some((s) => s.length === 0)) throw new Error("a signing secret is required");
  return [`t=${timestampSec}`, ...secrets.map((s) => `v2=${requestHmacHex(s, timestampSec, req)}`)].join(",");
}

/** Checks a `v2` header against the request as received (method, request target, raw body); like verifyEvent otherwise. */
export function verifyRequest(
  secret: string | readonly string[],
  header: string | null | undefined,
  req: SignedRequest,
  opts: { toleranceSec?: number; now?: Date | number } = {},
): VerifyResult {
  if (!header) return { ok: false, reason: "missing_header" };
  let timestamp: number | undefined;
  const v2: string[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) return { ok: false, reason: "malformed_header" };
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(value)) return { ok: false, reason: "malformed_header" };
      timestamp = Number(value);
    } else if (key === "v2" && /^[0-9a-f]{64}$/i.test(value)) v2.push(value.toLowerCase());
  }
  if (timestamp === undefined) return { ok: false, reason: "malformed_header" };
  const nowMs = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
  if (Math.abs(Math.floor(nowMs / 1000) - timestamp) > (opts.toleranceSec ?? DEFAULT_TOLERANCE_SEC)) return { ok: false, reason: "timestamp_out_of_tolerance" };
  let matched = false;
  for (const s of (typeof secret === "string" ? [secret] : secret).filter((x) => x.length > 0)) {
    const expected = Buffer.from(requestHmacHex(s, timestamp, req), "hex");
    for (const candidate of v2) if (timingSafeEqual(expected, Buffer.from(candidate, "hex"))) matched = true;
  }
  return matched ? { ok: true, timestamp } : { ok: false, reason: "no_matching_signature" };
}
