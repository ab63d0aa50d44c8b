import express from "express";
import http from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { providerStatusRoutes } from "../../src/http/provider-status.routes";
import { errorHandler } from "../../src/http/errors";
import type { ProviderStatusUpdate } from "../../src/providers/ports";
import { TwilioRestClient } from "../../src/providers/twilio/client";
import { computeTwilioSignature } from "../../src/providers/twilio/signature";
import { twilioStatusCallbackUrl } from "../../src/providers/twilio/status-callback";
import { TwilioSmsSender } from "../../src/providers/twilio/twilio-sms";
import { TwilioVoiceSender } from "../../src/providers/twilio/twilio-voice";
import { createTwilioStandin, newTwilioSid } from "../../src/sandbox/twilio/twilio-standin";
import { ACCOUNT_SID, AUTH_TOKEN, FROM, TO, codeMessage, silentLogger } from "./helpers";

const PUBLIC = "https://bot.example.com";
const URL_ = `${PUBLIC}/providers/twilio/status`;

function appWith(onStatus: (u: ProviderStatusUpdate) => Promise<void>, publicBaseUrl = PUBLIC) {
  const app = express();
  app.use(providerStatusRoutes({ authToken: AUTH_TOKEN, publicBaseUrl, onStatus, logger: silentLogger() }));
  app.use(errorHandler(silentLogger()));
  return app;
}

function signedPost(app: express.Express, params: Record<string, string>, opts: { url?: string; path?: string; token?: string } = {}) {
  const path = opts.path ?? "/providers/twilio/status";
  const signature = computeTwilioSignature(opts.token ?? AUTH_TOKEN, opts.url ?? PUBLIC + path, params);
  return request(app).post(path).type("form").set("X-Twilio-Signature", signature).send(new URLSearchParams(params).toString());
}

const messageParams = (status: string, extra: Record<string, string> = {}) => {
  const sid = newTwilioSid("SM");
  return { AccountSid: ACCOUNT_SID, ApiVersion: "2010-04-01", From: FROM, MessageSid: sid, SmsSid: sid, MessageStatus: status, SmsStatus: status, To: TO, ...extra };
};
const callParams = (status: string, extra: Record<string, string> = {}) => ({
  AccountSid: ACCOUNT_SID,
  ApiVersion: "2010-04-01",
  CallSid: newTwilioSid("CA"),
  CallStatus: status,
  Direction: "outbound-api",
  From: FROM,
  To: TO,
  ...extra,
});

describe("POST /providers/twilio/status", () => {
  it("accepts a correctly signed message callback and reports it (204)", async () => {
    const seen: ProviderStatusUpdate[] = [];
    const app = appWith(async (u) => void seen.push(u));
    const params = messageParams("delivered");
    const res = await signedPost(app, params);
    expect(res.status).toBe(204);
    expect(seen).toEqual([{ provider: "twilio", providerRef: params.MessageSid, status: "delivered" }]);
  });

  it("rejects a tampered, unsigned, wrongly keyed or wrong-URL callback with 403 invalid_signature", async () => {
    const onStatus = jest.fn(async () => {});
    const app = appWith(onStatus);
    const params = messageParams("delivered");
    const signature = computeTwilioSignature(AUTH_TOKEN, URL_, params);
    const tampered = { ...params, MessageStatus: "failed" };
    const cases = [
      request(app).post("/providers/twilio/status").type("form").set("X-Twilio-Signature", signature).send(new URLSearchParams(tampered).toString()),
      request(app).post("/providers/twilio/status").type("form").send(new URLSearchParams(params).toString()),
      signedPost(app, params, { token: "another-token" }),
      signedPost(app, params, { url: "http://internal:3000/providers/twilio/status" }),
      request(app).post("/providers/twilio/status").type("form").set("X-Twilio-Signature", signature).send(new URLSearchParams({ ...params, Extra: "1" }).toString()),
    ];
    for (const pending of cases) {
      const res = await pending;
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ error: { code: "invalid_signature", message: expect.any(String) } });
    }
    expect(onStatus).not.toHaveBeenCalled();
  });

  it("verifies against the public base URL plus the original URL, query string included", async () => {
    const seen: ProviderStatusUpdate[] = [];
    const app = appWith(async (u) => void seen.push(u), "https://bot.example.com/");
    const params = messageParams("sent");
    expect((await signedPost(app, params, { path: "/providers/twilio/status?d=abc" })).status).toBe(204);
    expect(seen).toHaveLength(1);
  });

  it.each([
    ["queued", "sent", undefined],
    ["sent", "sent", undefined],
    ["delivered", "delivered", undefined],
    ["read", "delivered", undefined],
    ["undelivered", "failed", "30003"],
    ["failed", "failed", "30008"],
  ])("maps MessageStatus %s to %s", async (twilioStatus, status, errorCode) => {
    const seen: ProviderStatusUpdate[] = [];
    const params = messageParams(twilioStatus, errorCode ? { ErrorCode: errorCode } : {});
    expect((await signedPost(appWith(async (u) => void seen.push(u)), params)).status).toBe(204);
    expect(seen).toEqual([{ provider: "twilio", providerRef: params.MessageSid, status, ...(errorCode ? { errorCode } : {}) }]);
  });

  it.each([
    ["completed", "delivered", undefined],
    ["busy", "failed", "busy"],
    ["no-answer", "failed", "no-answer"],
    ["failed", "failed", "failed"],
    ["canceled", "failed", "canceled"],
    ["ringing", "sent", undefined],
  ])("maps CallStatus %s to %s", async (twilioStatus, status, errorCode) => {
    const seen: ProviderStatusUpdate[] = [];
    const params = callParams(twilioStatus);
    expect((await signedPost(appWith(async (u) => void seen.push(u)), params)).status).toBe(204);
    expect(seen).toEqual([{ provider: "twilio", providerRef: params.CallSid, status, ...(errorCode ? { errorCode } : {}) }]);
  });

  it("keeps a call's ErrorCode when Twilio gives one", async () => {
    const seen: ProviderStatusUpdate[] = [];
    const params = callParams("failed", { ErrorCode: "13224" });
    await signedPost(appWith(async (u) => void seen.push(u)), params);
    expect(seen[0]).toEqual(expect.objectContaining({ status: "failed", errorCode: "13224" }));
  });

  it("answers 204 without reporting statuses it does not map (sending, accepted)", async () => {
    const onStatus = jest.fn(async () => {});
    const app = appWith(onStatus);
    expect((await signedPost(app, messageParams("sending"))).status).toBe(204);
    expect((await signedPost(app, messageParams("accepted"))).status).toBe(204);
    expect(onStatus).not.toHaveBeenCalled();
  });

  it("answers 400 JSON to a signed body that is not a status callback", async () => {
    const onStatus = jest.fn(async () => {});
    const app = appWith(onStatus);
    const bodies: Array<Record<string, string>> = [{ Foo: "bar" }, { MessageSid: "SM123", MessageStatus: "sent" }, { ...messageParams("sent"), ErrorCode: "abc" }, { CallSid: newTwilioSid("CA") }];
    for (const params of bodies) {
      const res = await signedPost(app, params);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_status_callback");
    }
    expect(onStatus).not.toHaveBeenCalled();
  });

  it("answers 500 when the status cannot be recorded", async () => {
    const app = appWith(async () => {
      throw new Error("db down");
    });
    const res = await signedPost(app, messageParams("delivered"));
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe("internal_error");
  });
});

describe("status callbacks from the stand-in, end to end", () => {
  const seen: ProviderStatusUpdate[] = [];
  let bot: http.Server;
  let botUrl: string;
  const standin = createTwilioStandin({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, statusCallbackDelayMs: 5 });
  let client: TwilioRestClient;

  beforeAll(async () => {
    bot = http.createServer();
    await new Promise<void>((r) => bot.listen(0, "127.0.0.1", r));
    botUrl = `http://127.0.0.1:${(bot.address() as AddressInfo).port}`;
    bot.on("request", appWith(async (u) => void seen.push(u), botUrl));
    const { url } = await standin.listen();
    client = new TwilioRestClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl: url });
  });
  afterAll(async () => {
    client.close();
    await standin.close();
    await new Promise<void>((r) => {
      bot.close(() => r());
      bot.closeAllConnections();
    });
  });
  beforeEach(() => void (seen.length = 0));

  it("an SMS goes sent → delivered, each callback signed and accepted", async () => {
    const sms = new TwilioSmsSender({ client, from: FROM, statusCallbackUrl: twilioStatusCallbackUrl(botUrl), logger: silentLogger() });
    const res = await sms.send(codeMessage());
    await standin.idle();
    const sid = (res as { providerRef: string }).providerRef;
    expect(seen).toEqual([
      { provider: "twilio", providerRef: sid, status: "sent" },
      { provider: "twilio", providerRef: sid, status: "delivered" },
    ]);
    const cbs = standin.callbacks().filter((c) => c.params.MessageSid === sid);
    expect(cbs.map((c) => [c.params.MessageStatus, c.responseStatus])).toEqual([
      ["sent", 204],
      ["delivered", 204],
    ]);
    expect(standin.messages().find((m) => m.sid === sid)?.status).toBe("delivered");
  });

  it("an undelivered SMS reports failed with Twilio's ErrorCode", async () => {
    standin.failNextDelivery({ status: "undelivered", errorCode: 30003 });
    const sms = new TwilioSmsSender({ client, from: FROM, statusCallbackUrl: twilioStatusCallbackUrl(botUrl), logger: silentLogger() });
    const res = await sms.send(codeMessage());
    await standin.idle();
    expect(seen).toEqual([
      { provider: "twilio", providerRef: (res as { providerRef: string }).providerRef, status: "sent" },
      { provider: "twilio", providerRef: (res as { providerRef: string }).providerRef, status: "failed", errorCode: "30003" },
    ]);
  });

  it("a call reports delivered when completed and failed when busy", async () => {
    const voice = new TwilioVoiceSender({ client, from: FROM, statusCallbackUrl: twilioStatusCallbackUrl(botUrl), logger: silentLogger() });
    const ok = await voice.send(codeMessage());
    standin.failNextDelivery({ status: "busy" });
    const busy = await voice.send(codeMessage());
    await standin.idle();
    expect(seen).toEqual(
      expect.arrayContaining([
        { provider: "twilio", providerRef: (ok as { providerRef: string }).providerRef, status: "delivered" },
        { provider: "twilio", providerRef: (busy as { providerRef: string }).providerRef, status: "failed", errorCode: "busy" },
      ]),
    );
    expect(seen).toHaveLength(2);
  });
});
