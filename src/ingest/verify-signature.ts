import { createHmac, timingSafeEqual } from "node:crypto";

const HEADER_PATTERN = /^sha256=([0-9a-fA-F]{64})$/;

/**
 * Checks Meta's X-Hub-Signature-256 over the raw body bytes, in constant time. The body must be the bytes as
 * received: Meta signs its escaped-unicode serialisation, so re-serialising parsed JSON breaks non-ASCII text.
 */
export function verifySignature(rawBody: Buffer, header: string | string[] | undefined, appSecret: string): boolean {
  if (typeof header !== "string") return false;
  const match = HEADER_PATTERN.exec(header.trim());
  if (!match) return false;
  const expected = createHmac("sha256", appSecret).update(rawBody).digest();
  const given = Buffer.from(match[1]!, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The header value Meta would send for this body (the sandbox and the tests sign with it). */
export function signBody(rawBody: Buffer | string, appSecret: string): string {
  return `sha256=${createHmac("sha256", appSecret).update(rawBody).digest("hex")}`;
}
