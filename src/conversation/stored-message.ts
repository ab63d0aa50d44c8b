import type { InboundMessage } from "../ingest/envelope";
import { redactCodes } from "../otp/codes";

/** Where an inbound message carries what the contact typed: a text's body, a media caption. */
const TYPED = [["text", "body"], ["image", "caption"], ["video", "caption"], ["document", "caption"]] as const;

/**
 * The form of an inbound message that is stored (the messages table, and so the console and the admin API): every
 * run of digits that looks like a code in what the contact typed (a text's body, a media caption) is replaced by
 * `[code]`, whichever handler takes the message: a code that matched, a wrong one, one with no pending
 * verification, a step-up code, a code written inside a sentence, a number a flow step asked for. The handlers
 * (the OTP check, the flow engine) get the message as it came; only what is kept is redacted.
 */
export function storedInbound(message: InboundMessage): Record<string, unknown> {
  const m = message as Record<string, unknown>;
  const copy: Record<string, unknown> = { ...m };
  let changed = false;
  for (const [part, field] of TYPED) {
    const inner = m[part];
    if (!inner || typeof inner !== "object") continue;
    const value = (inner as Record<string, unknown>)[field];
    if (typeof value !== "string") continue;
    const redacted = redactCodes(value);
    if (redacted === value) continue;
    copy[part] = { ...(inner as Record<string, unknown>), [field]: redacted };
    changed = true;
  }
  if (!changed) return m;
  copy.redacted = true;
  return copy;
}
