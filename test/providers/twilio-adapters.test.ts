import http from "node:http";
import type { AddressInfo } from "node:net";
import { TwilioRestClient } from "../../src/providers/twilio/client";
import { TwilioSmsSender } from "../../src/providers/twilio/twilio-sms";
import { TwilioVoiceSender } from "../../src/providers/twilio/twilio-voice";
import { smsBody, voiceScript } from "../../src/providers/sms/texts";
import { renderTwiml } from "../../src/providers/voice/twiml";
import { createTwilioStandin, type TwilioStandin } from "../../src/sandbox/twilio/twilio-standin";
import { elementsOf, parseXml, textOf } from "../../src/sandbox/twilio/xml";
import { ACCOUNT_SID, AUTH_TOKEN, CODE, FROM, TO, capturingLogger, codeMessage } from "./helpers";

const CALLBACK = "https://bot.example.com/providers/twilio/status";

describe("Twilio SMS and voice adapters against the stand-in", () => {
  let standin: TwilioStandin;
  let baseUrl: string;
  let client: TwilioRestClient;
  const { logger, lines } = capturingLogger();

  beforeAll(async () => {
    standin = createTwilioStandin({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, statusCallbackDelayMs: 60_000 });
    baseUrl = (await standin.listen()).url;
    client = new TwilioRestClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl, timeoutMs: 2_000 });
  });
  afterAll(async () => {
    client.close();
    await standin.close();
  });

  it("sends the SMS as form fields To, From, Body, StatusCallback with basic auth", async () => {
    const sms = new TwilioSmsSender({ client, from: FROM, statusCallbackUrl: CALLBACK, logger });
    const msg = codeMessage();
    const res = await sms.send(msg);
    expect(res).toEqual({ ok: true, providerRef: expect.stringMatching(/^SM[0-9a-f]{32}$/) });

    const req = standin.requests().at(-1)!;
    expect(req.resource).toBe("Messages");
    expect(req.accountSid).toBe(ACCOUNT_SID);
    expect(req.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64")}`);
    expect(req.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    const expected = new URLSearchParams({ To: TO, From: FROM, Body: smsBody(msg), StatusCallback: CALLBACK });
    expect(req.rawBody).toBe(expected.toString());
    expect(req.form).toEqual({ To: TO, From: FROM, Body: smsBody(msg), StatusCallback: CALLBACK });
    expect(standin.messages().at(-1)).toEqual(expect.objectContaining({ sid: (res as { providerRef: string }).providerRef, to: TO, from: FROM, status: "queued", numSegments: 1 }));
  });

  it("leaves StatusCallback out without a public URL", async () => {
    const sms = new TwilioSmsSender({ client, from: FROM, logger });
    await sms.send(codeMessage({ locale: "pt_BR" }));
    expect(Object.keys(standin.requests().at(-1)!.form)).toEqual(["To", "From", "Body"]);
  });

  it("places the call with To, From, Twiml, StatusCallback; the TwiML reads the digits one by one", async () => {
    const voice = new TwilioVoiceSender({ client, from: FROM, statusCallbackUrl: CALLBACK, logger });
    const msg = codeMessage({ locale: "es", brand: "Tienda & Cía" });
    const res = await voice.send(msg);
    expect(res).toEqual({ ok: true, providerRef: expect.stringMatching(/^CA[0-9a-f]{32}$/) });

    const req = standin.requests().at(-1)!;
    expect(req.resource).toBe("Calls");
    expect(req.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64")}`);
    const twiml = renderTwiml(voiceScript(msg));
    expect(req.rawBody).toBe(new URLSearchParams({ To: TO, From: FROM, Twiml: twiml, StatusCallback: CALLBACK }).toString());
    const root = parseXml(req.form.Twiml!);
    const says = elementsOf(root).filter((e) => e.name === "Say");
    expect(says.every((s) => s.attributes.language === "es-MX")).toBe(true);
    expect(says.filter((s) => textOf(s).includes("4, 8, 2, 9, 1, 0"))).toHaveLength(2);
    expect(says.map(textOf).join(" ")).toContain("Tienda & Cía");
    expect(standin.calls().at(-1)).toEqual(expect.objectContaining({ to: TO, from: FROM, status: "queued", twiml }));
  });

  it("maps a wrong token (401, Twilio 20003) to a permanent failure", async () => {
    const bad = new TwilioRestClient({ accountSid: ACCOUNT_SID, authToken: "wrong", baseUrl });
    try {
      const res = await new TwilioSmsSender({ client: bad, from: FROM, logger }).send(codeMessage());
      expect(res).toEqual({ ok: false, transient: false, errorCode: "20003", message: expect.stringContaining("HTTP 401 error 20003") });
      const req = standin.requests().at(-1)!;
      expect(req.responseStatus).toBe(401);
    } finally {
      bad.close();
    }
  });

  it("answers a bad token with Twilio's 401 JSON", async () => {
    const res = await fetch(`${baseUrl}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
      method: "POST",
      headers: { Authorization: `Basic ${Buffer.from(`${ACCOUNT_SID}:nope`).toString("base64")}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: "To=%2B14155550123",
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: 20003, message: "Authenticate", more_info: "https://www.twilio.com/docs/errors/20003", status: 401 });
  });

  it("maps 400 with 21211 (invalid number) to permanent, and never lets the number through", async () => {
    const sms = new TwilioSmsSender({ client, from: FROM, logger });
    const res = await sms.send(codeMessage({ to: "+0123456789" }));
    expect(res).toEqual({ ok: false, transient: false, errorCode: "21211", message: expect.stringContaining("invalid 'To' phone number") });
    expect((res as { message: string }).message).not.toContain("0123456789");
    const voiceRes = await new TwilioVoiceSender({ client, from: FROM, logger }).send(codeMessage({ to: "12345" }));
    expect(voiceRes).toEqual(expect.objectContaining({ ok: false, transient: false, errorCode: "21211" }));
  });

  it.each([
    [400, 21610, false],
    [400, 21408, false],
    [429, 20429, true],
    [500, 20500, true],
    [503, 20503, true],
  ])("maps HTTP %i (Twilio %i) to transient=%s", async (status, code, transient) => {
    standin.failNext({ status, code, message: "forced by the test" });
    const res = await new TwilioSmsSender({ client, from: FROM, logger }).send(codeMessage());
    expect(res).toEqual({ ok: false, transient, errorCode: String(code), message: expect.stringContaining(`HTTP ${status} error ${code}`) });
  });

  it("maps a refused connection to transient", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const dead = new TwilioRestClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl: `http://127.0.0.1:${port}` });
    try {
      const res = await new TwilioVoiceSender({ client: dead, from: FROM, logger }).send(codeMessage());
      expect(res).toEqual({ ok: false, transient: true, errorCode: "ECONNREFUSED", message: expect.stringContaining("could not reach Twilio") });
    } finally {
      dead.close();
    }
  });

  it("counts failNext down", async () => {
    standin.failNext({ status: 503, code: 20503, message: "down", count: 2 });
    const sms = new TwilioSmsSender({ client, from: FROM, logger });
    expect((await sms.send(codeMessage())).ok).toBe(false);
    expect((await sms.send(codeMessage())).ok).toBe(false);
    expect((await sms.send(codeMessage())).ok).toBe(true);
  });

  it("never logged a code, the token or a full number", () => {
    const all = lines.join("\n");
    expect(lines.length).toBeGreaterThan(5);
    expect(all).not.toContain(CODE);
    expect(all).not.toContain("4, 8, 2");
    expect(all).not.toContain(AUTH_TOKEN);
    expect(all).not.toContain(TO);
    expect(all).not.toContain(TO.slice(1));
    expect(all).toContain("+1415•••••23");
  });
});
