import { ConfigError } from "../../src/config/env";
import { createCodeSenders } from "../../src/providers";
import { RecordingCodeSender, type RecordedCode } from "../../src/providers/sandbox/recording-sender";
import { TwilioSmsSender } from "../../src/providers/twilio/twilio-sms";
import { TwilioVoiceSender } from "../../src/providers/twilio/twilio-voice";
import { ManualClock } from "../../src/shared/clock";
import { testConfig } from "../helpers/env";
import { ACCOUNT_SID, CODE, FROM, TO, codeMessage, silentLogger } from "./helpers";

describe("RecordingCodeSender", () => {
  it("records SMS texts and voice scripts and emits them", async () => {
    const clock = new ManualClock(Date.parse("2026-01-02T03:04:05Z"));
    const sms = new RecordingCodeSender("sms", { clock });
    const events: RecordedCode[] = [];
    sms.on("sent", (r: RecordedCode) => events.push(r));
    const res = await sms.send(codeMessage());
    expect(res).toEqual({ ok: true, providerRef: expect.stringMatching(/^SBSM[0-9a-f]{30}$/) });
    expect(sms.sent()).toEqual([expect.objectContaining({ channel: "sms", to: TO, text: expect.stringContaining(CODE), reference: "dlv_test_1", at: clock.now() })]);
    expect(events).toEqual(sms.sent());

    const voice = new RecordingCodeSender("voice");
    await voice.send(codeMessage({ locale: "pt_BR" }));
    const call = voice.last(TO)!;
    expect(call.text).toContain("4, 8, 2, 9, 1, 0");
    expect(call.twiml).toMatch(/^<Response>.*<Say language="pt-BR"/);
    expect(voice.provider).toBe("sandbox");
    expect(voice.channel).toBe("voice");
  });

  it("failNext(n) fails the next n sends with the given class, then sends again", async () => {
    const sms = new RecordingCodeSender("sms");
    sms.failNext(2, { transient: true });
    sms.failNext(1, { transient: false, errorCode: "21610", message: "unsubscribed" });
    expect(await sms.send(codeMessage())).toEqual({ ok: false, transient: true, errorCode: "sandbox_transient", message: expect.any(String) });
    expect(await sms.send(codeMessage())).toEqual(expect.objectContaining({ ok: false, transient: true }));
    expect(await sms.send(codeMessage())).toEqual({ ok: false, transient: false, errorCode: "21610", message: "unsubscribed" });
    expect(await sms.send(codeMessage())).toEqual(expect.objectContaining({ ok: true }));
    expect(sms.sent()).toHaveLength(1);
    sms.clear();
    expect(sms.sent()).toEqual([]);
  });
});

describe("createCodeSenders and the configuration", () => {
  const twilioVars = { TWILIO_ACCOUNT_SID: ACCOUNT_SID, TWILIO_AUTH_TOKEN: "tok", TWILIO_FROM_NUMBER: FROM };

  it("defaults to no SMS and no voice", () => {
    const config = testConfig();
    expect(config.SMS_PROVIDER).toBe("none");
    expect(config.VOICE_PROVIDER).toBe("none");
    expect(config.TWILIO_BASE_URL).toBe("https://api.twilio.com");
    const senders = createCodeSenders(config, silentLogger());
    expect(senders.sms).toBeUndefined();
    expect(senders.voice).toBeUndefined();
    senders.close();
  });

  it("builds recording senders for sandbox", () => {
    const senders = createCodeSenders(testConfig({ SMS_PROVIDER: "sandbox", VOICE_PROVIDER: "sandbox" }), silentLogger());
    expect(senders.sms).toBeInstanceOf(RecordingCodeSender);
    expect(senders.voice).toBeInstanceOf(RecordingCodeSender);
    expect([senders.sms?.channel, senders.voice?.channel]).toEqual(["sms", "voice"]);
  });

  it("builds the Twilio adapters for twilio, never a recording sender", () => {
    const senders = createCodeSenders(testConfig({ SMS_PROVIDER: "twilio", VOICE_PROVIDER: "twilio", PUBLIC_BASE_URL: "https://bot.example.com", ...twilioVars }), silentLogger());
    try {
      expect(senders.sms).toBeInstanceOf(TwilioSmsSender);
      expect(senders.voice).toBeInstanceOf(TwilioVoiceSender);
      expect((senders.sms as TwilioSmsSender).params(codeMessage()).get("StatusCallback")).toBe("https://bot.example.com/providers/twilio/status");
    } finally {
      senders.close();
    }
  });

  it("refuses twilio without its credentials, naming each missing variable", () => {
    let error: unknown;
    try {
      testConfig({ SMS_PROVIDER: "twilio", TWILIO_AUTH_TOKEN: "tok" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join("\n");
    expect(problems).toMatch(/TWILIO_ACCOUNT_SID/);
    expect(problems).toMatch(/TWILIO_FROM_NUMBER/);
    expect(problems).not.toMatch(/TWILIO_AUTH_TOKEN/);
  });

  it("validates the Twilio variables' shapes", () => {
    expect(() => testConfig({ VOICE_PROVIDER: "twilio", ...twilioVars, TWILIO_FROM_NUMBER: "5017122661" })).toThrow(/TWILIO_FROM_NUMBER: must be an E.164/);
    expect(() => testConfig({ ...twilioVars, TWILIO_ACCOUNT_SID: "AB123" })).toThrow(/TWILIO_ACCOUNT_SID/);
    expect(() => testConfig({ SMS_PROVIDER: "carrier-pigeon" })).toThrow(/SMS_PROVIDER/);
    expect(() => testConfig({ PUBLIC_BASE_URL: "not a url" })).toThrow(/PUBLIC_BASE_URL/);
  });
});
