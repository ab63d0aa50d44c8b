import { maskPhone, type Logger } from "../../observability/logger";
import type { CodeMessage, CodeSender, CodeSendResult } from "../ports";
import { smsBody } from "../sms/texts";
import type { TwilioRestClient } from "./client";

export interface TwilioSmsOptions {
  client: TwilioRestClient;
  /** E.164 Twilio number */
  from: string;
  /** where Twilio posts MessageStatus changes; omitted when undefined */
  statusCallbackUrl?: string;
  logger: Logger;
}

/**
 * SMS codes through Twilio Programmable Messaging: `POST …/Messages.json` with To, From, Body and, when we have a
 * public URL, StatusCallback (Twilio then posts `sent`, `delivered`, `undelivered`, `failed`… as MessageStatus, with
 * ErrorCode on failure; no callback is sent for the initial `queued`:
 * https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).
 */
export class TwilioSmsSender implements CodeSender {
  readonly channel = "sms" as const;
  readonly provider = "twilio";
  /** Twilio reports delivery only to a status callback, which needs PUBLIC_BASE_URL */
  get reportsDelivery(): boolean {
    return Boolean(this.opts.statusCallbackUrl);
  }

  constructor(private readonly opts: TwilioSmsOptions) {}

  /** The exact form parameters sent for `msg` (exported for tests and docs). */
  params(msg: CodeMessage): URLSearchParams {
    const p = new URLSearchParams();
    p.set("To", msg.to);
    p.set("From", this.opts.from);
    p.set("Body", smsBody(msg));
    if (this.opts.statusCallbackUrl) p.set("StatusCallback", this.opts.statusCallbackUrl);
    return p;
  }

  async send(msg: CodeMessage): Promise<CodeSendResult> {
    const res = await this.opts.client.create("Messages", this.params(msg));
    const log = { channel: this.channel, provider: this.provider, to: maskPhone(msg.to), reference: msg.reference };
    if (res.ok) {
      this.opts.logger.info({ ...log, providerRef: res.sid, status: res.status }, "code sms accepted by Twilio");
      return { ok: true, providerRef: res.sid };
    }
    this.opts.logger.warn({ ...log, transient: res.transient, errorCode: res.errorCode, httpStatus: res.httpStatus }, "code sms not accepted by Twilio");
    return { ok: false, transient: res.transient, errorCode: res.errorCode, message: res.message };
  }
}
