import nodemailer, { type Transporter } from "nodemailer";
import type { Logger } from "../../observability/logger";
import { maskEmail, type EmailMessage, type EmailSender, type EmailSendResult } from "./ports";

export interface SmtpSenderOptions {
  /** smtp://user:pass@host:587 (STARTTLS when the server offers it) or smtps://user:pass@host:465 (implicit TLS) */
  url: string;
  from: string;
  logger: Logger;
  /** connection, greeting and socket timeouts (ms); default 10 s */
  timeoutMs?: number;
  /** a ready transporter (tests); default: nodemailer's pooled SMTP transport for `url` */
  transporter?: Pick<Transporter, "sendMail" | "close">;
}

/**
 * Sends email through an SMTP server with nodemailer (pooled connections). Failures come back as values with
 * nodemailer's error code (`EAUTH`, `ECONNECTION`, `EENVELOPE`, …) or the SMTP reply code; the logger sees the
 * masked recipient and the code, never the address, the server's credentials or the message.
 */
export class SmtpEmailSender implements EmailSender {
  readonly provider = "smtp";
  private readonly transporter: Pick<Transporter, "sendMail" | "close">;

  constructor(private readonly opts: SmtpSenderOptions) {
    const timeout = opts.timeoutMs ?? 10_000;
    this.transporter =
      opts.transporter ??
      nodemailer.createTransport({
        url: opts.url,
        pool: true,
        maxConnections: 3,
        connectionTimeout: timeout,
        greetingTimeout: timeout,
        socketTimeout: timeout,
        // nodemailer's own logger would print envelopes (addresses): keep it off
        logger: false,
        debug: false,
      } as Parameters<typeof nodemailer.createTransport>[0]);
  }

  async send(msg: EmailMessage): Promise<EmailSendResult> {
    const to = maskEmail(msg.to);
    try {
      const info = await this.transporter.sendMail({
        from: this.opts.from,
        to: msg.to,
        subject: msg.subject,
        text: msg.text,
        ...(msg.html ? { html: msg.html } : {}),
      });
      const id = typeof info?.messageId === "string" ? info.messageId : "";
      const rejected = Array.isArray(info?.rejected) ? info.rejected.length : 0;
      if (rejected > 0) {
        this.opts.logger.warn({ provider: this.provider, to }, "email rejected by the SMTP server");
        return { ok: false, error: "rejected" };
      }
      this.opts.logger.info({ provider: this.provider, to, id }, "email sent");
      return { ok: true, id };
    } catch (err) {
      const e = err as { code?: unknown; responseCode?: unknown };
      const error = typeof e.code === "string" ? e.code : typeof e.responseCode === "number" ? `smtp_${e.responseCode}` : "smtp_error";
      this.opts.logger.warn({ provider: this.provider, to, error }, "email not sent");
      return { ok: false, error };
    }
  }

  close(): void {
    this.transporter.close();
  }
}
