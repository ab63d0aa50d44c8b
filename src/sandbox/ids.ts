import { randomBytes } from "node:crypto";

let counter = 0;

/**
 * A fresh message id in Meta's shape: `wamid.` + base64 of an opaque binary blob (real ones are
 * `wamid.HBgL…AA==`). A counter in the blob makes ids unique within a process even if randomness repeats.
 */
export function newWamid(): string {
  counter = (counter + 1) % 0xffffffff;
  const blob = Buffer.concat([Buffer.from([0x1c, 0x18, 0x0b]), Buffer.from(counter.toString(16).padStart(8, "0"), "hex"), randomBytes(18)]);
  return `wamid.${blob.toString("base64")}`;
}

/** Graph's trace id: 23 url-safe characters. */
export function fbtraceId(): string {
  return randomBytes(17).toString("base64url").slice(0, 23);
}

/** Meta's conversation ids are 32 hex characters. */
export function conversationId(): string {
  return randomBytes(16).toString("hex");
}

/** Phone number as Meta's wa_id: digits only. */
export function digits(phone: string): string {
  return phone.replace(/\D/g, "");
}

/** Masks a bearer token for the request log: never the token in clear. */
export function maskToken(header: string | undefined): string {
  if (!header) return "(none)";
  const token = header.replace(/^Bearer\s+/i, "");
  const shown = Math.min(4, Math.floor(token.length / 4));
  return `${token.slice(0, shown)}…(${token.length} chars)`;
}
