import type { Config } from "../config/env";
import type { Logger } from "../observability/logger";
import type { CodeSender } from "./ports";
import { RecordingCodeSender } from "./sandbox/recording-sender";
import { TwilioRestClient } from "./twilio/client";
import { twilioStatusCallbackUrl } from "./twilio/status-callback";
import { TwilioSmsSender } from "./twilio/twilio-sms";
import { TwilioVoiceSender } from "./twilio/twilio-voice";

export type CodeSenderConfig = Pick<
  Config,
  "SMS_PROVIDER" | "VOICE_PROVIDER" | "TWILIO_ACCOUNT_SID" | "TWILIO_AUTH_TOKEN" | "TWILIO_FROM_NUMBER" | "TWILIO_BASE_URL" | "PUBLIC_BASE_URL"
> &
  Partial<Pick<Config, "OUTBOUND_TIMEOUT_MS">>;

export interface CodeSenders {
  sms?: CodeSender;
  voice?: CodeSender;
  /** frees the Twilio keep-alive sockets (call on shutdown) */
  close(): void;
}

/**
 * The fallback code channels from SMS_PROVIDER / VOICE_PROVIDER: `none` → undefined, `sandbox` → a recording
 * sender (nothing leaves the process), `twilio` → the Twilio adapters (one shared HTTP client). The config schema
 * already refuses twilio without its credentials; the check here only guards callers that build a config by hand.
 */
export function createCodeSenders(config: CodeSenderConfig, logger: Logger): CodeSenders {
  let client: TwilioRestClient | undefined;
  const twilio = () => {
    const { TWILIO_ACCOUNT_SID: sid, TWILIO_AUTH_TOKEN: token, TWILIO_FROM_NUMBER: from } = config;
    if (!sid || !token || !from) throw new Error("twilio code channels need TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER");
    client ??= new TwilioRestClient({ accountSid: sid, authToken: token, baseUrl: config.TWILIO_BASE_URL, timeoutMs: config.OUTBOUND_TIMEOUT_MS });
    return { client, from, statusCallbackUrl: twilioStatusCallbackUrl(config.PUBLIC_BASE_URL) };
  };

  const build = (channel: "sms" | "voice", choice: "none" | "sandbox" | "twilio"): CodeSender | undefined => {
    const log = logger.child({ component: `${channel}-sender`, provider: choice });
    switch (choice) {
      case "none":
        return undefined;
      case "sandbox":
        return new RecordingCodeSender(channel, { logger: log });
      case "twilio":
        return channel === "sms" ? new TwilioSmsSender({ ...twilio(), logger: log }) : new TwilioVoiceSender({ ...twilio(), logger: log });
    }
  };

  const sms = build("sms", config.SMS_PROVIDER);
  const voice = build("voice", config.VOICE_PROVIDER);
  if ((sms?.provider === "twilio" || voice?.provider === "twilio") && !config.PUBLIC_BASE_URL) {
    logger.warn("PUBLIC_BASE_URL is not set: Twilio delivery statuses will not be reported back, fallback relies on timeouts");
  }
  return { ...(sms ? { sms } : {}), ...(voice ? { voice } : {}), close: () => client?.close() };
}
