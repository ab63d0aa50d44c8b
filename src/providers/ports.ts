/**
 * The port every one-time-code channel implements (SMS and voice, the fallbacks after WhatsApp). The OTP layer
 * only sees this; adapters live one folder each (twilio/, sandbox/). Expected failures are values, never throws:
 * `transient` means "the same send may succeed later" (retry or fall back), otherwise it never will as it stands.
 */
export interface CodeMessage {
  /** E.164 */
  to: string;
  code: string;
  /** en_US, es, pt_BR… (unknown locales fall back to English) */
  locale: string;
  /** business name, said/written in the text */
  brand: string;
  expiryMinutes: number;
  /** our delivery id, for correlation in logs and status callbacks */
  reference: string;
}

export type CodeSendResult = { ok: true; providerRef: string } | { ok: false; transient: boolean; errorCode?: string; message: string };

export interface CodeSender {
  readonly channel: "sms" | "voice";
  readonly provider: string;
  /** whether this sender will report delivery (a status callback): only then is a no-delivery timeout armed */
  readonly reportsDelivery: boolean;
  send(msg: CodeMessage): Promise<CodeSendResult>;
}

/** A delivery status reported later by the provider (status callback), keyed by the provider's reference. */
export interface ProviderStatusUpdate {
  provider: string;
  providerRef: string;
  status: "sent" | "delivered" | "failed";
  errorCode?: string;
}
