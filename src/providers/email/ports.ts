/**
 * The port every email channel implements (today: PIN reset links). The caller only sees this; adapters live
 * next to it (smtp-sender.ts, recording-sender.ts). Expected failures are values, never throws. Nothing behind
 * this port logs an address in clear (see maskEmail) or a message body (links in it are secrets).
 */
export interface EmailMessage {
  to: string;
  subject: string;
  /** the plain-text part (always sent) */
  text: string;
  /** an optional HTML alternative */
  html?: string;
}

export type EmailSendResult = { ok: true; id: string } | { ok: false; error: string };

export interface EmailSender {
  /** `smtp`, `sandbox`… */
  readonly provider: string;
  send(msg: EmailMessage): Promise<EmailSendResult>;
  /** frees pooled connections (call on shutdown) */
  close?(): void;
}

/**
 * An address as it may appear in logs, chat and events: the first character of the local part and the domain,
 * `ada@example.com` → `a•••@example.com`. Anything that is not an address is masked whole.
 */
export function maskEmail(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const v = value.trim();
  const at = v.lastIndexOf("@");
  if (at < 1 || at === v.length - 1) return "•••";
  return `${v[0]}•••${v.slice(at)}`;
}

/** A plausible single address (no display name, no list): what a recovery email must look like to be sent to. */
export function isPlainAddress(value: string): boolean {
  return value.length <= 254 && /^[^\s@<>,;"]+@[^\s@<>,;"]+\.[^\s@<>,;"]+$/.test(value);
}
