import type { Config } from "../../config/env";
import type { Logger } from "../../observability/logger";
import type { EmailSender } from "./ports";
import { RecordingEmailSender } from "./recording-sender";
import { SmtpEmailSender } from "./smtp-sender";

export { maskEmail, isPlainAddress, type EmailMessage, type EmailSender, type EmailSendResult } from "./ports";
export { RecordingEmailSender, type RecordedEmail } from "./recording-sender";
export { SmtpEmailSender } from "./smtp-sender";

export type EmailSenderConfig = Pick<Config, "EMAIL_PROVIDER" | "SMTP_URL" | "EMAIL_FROM"> & Partial<Pick<Config, "OUTBOUND_TIMEOUT_MS">>;

/**
 * The email channel from EMAIL_PROVIDER: `none` → undefined (no reset by email), `sandbox` → a recording sender
 * (nothing leaves the process), `smtp` → nodemailer on SMTP_URL. The config schema already refuses smtp without
 * SMTP_URL; the check here only guards callers that build a config by hand.
 */
export function createEmailSender(config: EmailSenderConfig, logger: Logger): EmailSender | undefined {
  const log = logger.child({ component: "email-sender", provider: config.EMAIL_PROVIDER });
  switch (config.EMAIL_PROVIDER) {
    case "none":
      return undefined;
    case "sandbox":
      return new RecordingEmailSender({ from: config.EMAIL_FROM, logger: log });
    case "smtp":
      if (!config.SMTP_URL) throw new Error("EMAIL_PROVIDER=smtp needs SMTP_URL");
      return new SmtpEmailSender({ url: config.SMTP_URL, from: config.EMAIL_FROM, logger: log, timeoutMs: config.OUTBOUND_TIMEOUT_MS });
  }
}
