import { maskPhone, type Logger } from "../../observability/logger";
import type { CodeMessage, CodeSender, CodeSendResult } from "../ports";
import { voiceScript } from "../sms/texts";
import { renderTwiml } from "../voice/twiml";
import type { TwilioRestClient } from "./client";

export interface TwilioVoiceOptions {
  client: TwilioRestClient;
  /** E.164 Twilio number (caller id) */
  from: string;
  statusCallbackUrl?: string;
  logger: Logger;
}

/**
 * Twilio's Call resource takes the TwiML inline as `Twiml`, at most 4,000 characters (error 32018 "Twiml size
 * exceeded maximum allowed value of 4000 characters", https://www.twilio.com/docs/api/errors/32018).
 */
export const TWIML_MAX_CHARS = 4000;

/**
 * Voice codes through Twilio Programmable Voice: `POST …/Calls.json` with To, From, Twiml (the spoken script, see
 * sms/texts.ts and voice/twiml.ts) and StatusCallback when we have a public URL. Without StatusCallbackEvent Twilio
 * posts only when the call ends, with CallStatus completed, busy, no-answer, failed or canceled
 * (https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent).
 */
export class TwilioVoiceSender implements CodeSender {
  readonly channel = "voice" as const;
  readonly provider = "twilio";
  /** Twilio reports delivery only to a status callback, which needs PUBLIC_BASE_URL */
  get reportsDelivery(): boolean {
    return Boolean(this.opts.statusCallbackUrl);
  }

  constructor(private readonly opts: TwilioVoiceOptions) {}

  params(msg: CodeMessage): URLSearchParams {
    const p = new URLSearchParams();
    p.set("To", msg.to);
    p.set("From", this.opts.from);
    p.set("Twiml", renderTwiml(voiceScript(msg)));
    if (this.opts.statusCallbackUrl) p.set("StatusCallback", this.opts.statusCallbackUrl);
    return p;
  }

  async send(msg: CodeMessage): Promise<CodeSendResult> {
    const params = this.params(msg);
    const log = { channel: this.channel, provider: this.provider, to: maskPhone(msg.to), reference: msg.reference };
    const twimlLength = params.get("Twiml")?.length ?? 0;
    if (twimlLength > TWIML_MAX_CHARS) {
      this.opts.logger.error({ ...log, twimlLength }, "code call script longer than Twilio accepts");
      return { ok: false, transient: false, errorCode: "twiml_too_long", message: `TwiML is ${twimlLength} characters; Twilio accepts at most ${TWIML_MAX_CHARS}` };
    }
    const res = await this.opts.client.create("Calls", params);
    if (res.ok) {
      this.opts.logger.info({ ...log, providerRef: res.sid, status: res.status }, "code call accepted by Twilio");
      return { ok: true, providerRef: res.sid };
    }
    this.opts.logger.warn({ ...log, transient: res.transient, errorCode: res.errorCode, httpStatus: res.httpStatus }, "code call not accepted by Twilio");
    return { ok: false, transient: res.transient, errorCode: res.errorCode, message: res.message };
  }
}
