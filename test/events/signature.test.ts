import { createHmac, randomUUID } from "node:crypto";
import { validateCallbackUrl } from "../../src/events/callback";
import { parseSignatureHeader, signEvent, verifyEvent } from "../../src/events/signature";
import { eventDataSchemas } from "../../src/events/types";
import { eventBackoff, EventDeliveryError, parseRetryAfter } from "../../src/queues/events.worker";
import { assertNoSecrets, isSecretKey, SecretInDataError } from "../../src/shared/no-secrets";

const secret = "whsec_test_secret";
const body = JSON.stringify({ id: "e1", type: "verification.approved", data: { to: "+14155550123" } });
const t = 1_718_000_000;

describe("signEvent / verifyEvent", () => {
  it("signs t=<unix>,v1=<hex HMAC-SHA256(secret, '<t>.<body>')>", () => {
    const header = signEvent(secret, body, t);
    expect(header).toBe(`t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`);
    expect(verifyEvent(secret, header, body, { now: t * 1000 })).toEqual({ ok: true, timestamp: t });
    expect(verifyEvent(secret, header, Buffer.from(body), { now: new Date(t * 1000 + 299_000) }).ok).toBe(true);
  });

  it("refuses a tampered body, another secret, an old or future timestamp, a missing or malformed header", () => {
    const header = signEvent(secret, body, t);
    expect(verifyEvent(secret, header, body.replace("+14155550123", "+14155550124"), { now: t * 1000 })).toEqual({ ok: false, reason: "no_matching_signature" });
    expect(verifyEvent("whsec_other", header, body, { now: t * 1000 })).toEqual({ ok: false, reason: "no_matching_signature" });
    expect(verifyEvent(secret, header, body, { now: (t + 301) * 1000 })).toEqual({ ok: false, reason: "timestamp_out_of_tolerance" });
    expect(verifyEvent(secret, header, body, { now: (t - 301) * 1000 })).toEqual({ ok: false, reason: "timestamp_out_of_tolerance" });
    expect(verifyEvent(secret, header, body, { now: (t + 3600) * 1000, toleranceSec: 7200 }).ok).toBe(true);
    // re-signing the same body with a new timestamp needs the secret: swapping t alone breaks the signature
    expect(verifyEvent(secret, header.replace(`t=${t}`, `t=${t + 100}`), body, { now: (t + 100) * 1000 }).ok).toBe(false);
    expect(verifyEvent(secret, undefined, body)).toEqual({ ok: false, reason: "missing_header" });
    expect(verifyEvent(secret, "v1=abc", body)).toEqual({ ok: false, reason: "malformed_header" });
    expect(verifyEvent(secret, "t=abc,v1=00", body)).toEqual({ ok: false, reason: "malformed_header" });
  });

  it("accepts any of several v1 entries and several secrets (rotation); ignores unknown schemes", () => {
    const both = signEvent(["whsec_new", "whsec_old"], body, t);
    expect(parseSignatureHeader(both)?.v1).toHaveLength(2);
    expect(verifyEvent("whsec_old", both, body, { now: t * 1000 }).ok).toBe(true);
    expect(verifyEvent("whsec_new", both, body, { now: t * 1000 }).ok).toBe(true);
    const single = signEvent("whsec_old", body, t);
    expect(verifyEvent(["whsec_new", "whsec_old"], single, body, { now: t * 1000 }).ok).toBe(true);
    expect(verifyEvent(secret, `${signEvent(secret, body, t)},v2=zzz`, body, { now: t * 1000 }).ok).toBe(true);
  });
});

describe("the no-secrets guard", () => {
  it.each(["code", "Code", "otp", "OTP", "pin", "secret", "otpCode", "otp_code", "verificationCode", "codeHash", "codeEnc", "secretEnc", "client_secret", "password", "otpcode", "PIN"])(
    "refuses a key named %s",
    (key) => expect(isSecretKey(key)).toBe(true),
  );
  it.each(["errorCode", "error_code", "countryCode", "languageCode", "statusCode", "codeLength", "pinned", "spinner", "footprint", "to", "reason", "token"])(
    "allows a key named %s",
    (key) => expect(isSecretKey(key)).toBe(false),
  );
  it("looks at any depth, inside arrays, and names the path but never the value", () => {
    expect(() => assertNoSecrets({ a: { b: [{ c: 1 }, { d: { code: "123456" } }] } })).toThrow(SecretInDataError);
    try {
      assertNoSecrets({ a: { b: [{ c: 1 }, { d: { code: "123456" } }] } });
    } catch (err) {
      expect((err as SecretInDataError).path).toBe("a.b[1].d.code");
      expect((err as Error).message).not.toContain("123456");
    }
    expect(() => assertNoSecrets({ accessToken: "x" }, { words: ["token"] })).toThrow(SecretInDataError);
    expect(() => assertNoSecrets({ nested: { accesstoken: "x" } }, { words: ["token"] })).toThrow(SecretInDataError);
    expect(() => assertNoSecrets({ errorCode: "131026", list: [1, "code"], when: new Date() })).not.toThrow();
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(() => assertNoSecrets(cyclic)).not.toThrow();
  });
});

describe("the event catalogue", () => {
  it("validates data strictly", () => {
    const ok = { verificationId: randomUUID(), to: "+14155550123", purpose: "login", channel: "whatsapp", status: "approved", attempts: 1 };
    expect(eventDataSchemas["verification.approved"].parse(ok)).toEqual(ok);
    expect(() => eventDataSchemas["verification.approved"].parse({ ...ok, to: "4155550123" })).toThrow();
    expect(() => eventDataSchemas["verification.approved"].parse({ ...ok, extra: 1 })).toThrow();
    expect(() => eventDataSchemas["number.blocked"].parse({ to: "+14155550123", until: new Date().toISOString(), reason: "customer_report" })).not.toThrow();
  });
});

describe("callback URL validation", () => {
  // [url, accepted in production/test mode, accepted in development mode]
  it.each([
    ["https://example.com/hooks/wabot", true, true],
    ["https://example.com:8443/h?x=1", true, true],
    ["http://127.0.0.1:4000/h", false, true],
    ["http://localhost:4000/h", false, true],
    ["http://[::1]:4000/h", false, true],
    ["http://example.com/h", false, false],
    ["http://10.0.0.5/h", false, false],
    ["http://127.0.0.1.nip.io/h", false, false],
    // issue 15 item 13: internal addresses over https, in any spelling, in every mode
    ["https://169.254.169.254/latest/meta-data/", false, false],
    ["https://127.0.0.1/h", false, false],
    ["https://2130706433/h", false, false],
    ["https://localhost/h", false, false],
    ["https://10.1.2.3/h", false, false],
    ["https://192.168.1.1/h", false, false],
    ["https://100.64.0.1/h", false, false],
    ["https://[fd00::1]/h", false, false],
    ["https://[fe80::1]/h", false, false],
    ["https://[::1]/h", false, false],
    ["https://[::ffff:127.0.0.1]/h", false, false],
    ["https://[::ffff:0:a9fe:a9fe]/h", false, false],
    ["https://[::ffff:0:10.0.0.1]/h", false, false],
    ["https://[64:ff9b::a9fe:a9fe]/h", false, false],
    ["https://[2002:a9fe:a9fe::]/h", false, false],
    ["https://8.8.8.8/h", true, true],
    ["ftp://example.com/h", false, false],
    ["https://user:pass@example.com/h", false, false],
    ["not a url", false, false],
    ["", false, false],
  ])("%s → %s (development: %s)", (url, ok, okDev) => {
    expect(validateCallbackUrl(url).ok).toBe(ok);
    expect(validateCallbackUrl(url, { dev: false }).ok).toBe(ok);
    expect(validateCallbackUrl(url, { dev: true }).ok).toBe(okDev);
  });
  it("drops the fragment", () => {
    expect(validateCallbackUrl("https://example.com/h#frag")).toEqual({ ok: true, url: "https://example.com/h" });
  });
});

describe("the event-delivery backoff", () => {
  it("grows from 2 s by ×4 to an hour, with up to 20 % jitter taken off", () => {
    const noJitter = eventBackoff({}, () => 0);
    expect([1, 2, 3, 4, 5, 6, 7, 9].map((n) => noJitter(n))).toEqual([2_000, 8_000, 32_000, 128_000, 512_000, 2_048_000, 3_600_000, 3_600_000]);
    const fullJitter = eventBackoff({}, () => 1);
    expect(fullJitter(1)).toBe(1_600);
    expect(fullJitter(20)).toBe(2_880_000);
  });
  it("honours Retry-After up to the cap", () => {
    const b = eventBackoff({ baseMs: 10 }, () => 0);
    expect(b(1, "event-delivery", new EventDeliveryError("x", 429, 5_000))).toBe(5_000);
    expect(b(1, "event-delivery", new EventDeliveryError("x", 429, 10 * 3600_000))).toBe(3_600_000);
    expect(parseRetryAfter("120", 0)).toBe(120_000);
    expect(parseRetryAfter(new Date(60_000).toUTCString(), 0)).toBe(60_000);
    expect(parseRetryAfter("soon", 0)).toBeUndefined();
  });
});
