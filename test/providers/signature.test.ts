import { computeTwilioSignature, signaturePayload, verifyTwilioSignature } from "../../src/providers/twilio/signature";

/**
 * Twilio's documented example (Twilio's api-snippets, security/signature_validation/signature_validation.3.x.js and
 * .2.x.js, used on https://www.twilio.com/docs/usage/webhooks/webhooks-security): auth token 12345, this URL and
 * these POST parameters give the X-Twilio-Signature values below.
 */
const DOC_TOKEN = "12345";
const DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2";
const docParams = (caller: string) => ({ CallSid: "CA1234567890ABCDE", Caller: caller, Digits: "1234", From: caller, To: "+18005551212" });

describe("X-Twilio-Signature", () => {
  it("matches Twilio's documented examples", () => {
    expect(computeTwilioSignature(DOC_TOKEN, DOC_URL, docParams("+14158675310"))).toBe("GvWf1cFY/Q7PnoempGyD5oXAezc=");
    expect(computeTwilioSignature(DOC_TOKEN, DOC_URL, docParams("+14158675309"))).toBe("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    expect(verifyTwilioSignature(DOC_TOKEN, "GvWf1cFY/Q7PnoempGyD5oXAezc=", DOC_URL, docParams("+14158675310"))).toBe(true);
  });

  it("signs the URL followed by the parameters sorted by name, name then value", () => {
    expect(signaturePayload("https://x.test/cb", { To: "+1", Body: "hi", AccountSid: "AC1" })).toBe("https://x.test/cbAccountSidAC1BodyhiTo+1");
    // case-sensitive code-unit order, as Twilio's libraries sort
    expect(signaturePayload("u", { b: "1", B: "2", a: "3" })).toBe("uB2a3b1");
    // a repeated name: its values sorted
    expect(signaturePayload("u", new URLSearchParams("k=2&k=1&j=0"))).toBe("uj0k1k2");
    // the order the parameters arrive in does not matter
    expect(computeTwilioSignature("t", "u", { a: "1", b: "2" })).toBe(computeTwilioSignature("t", "u", [["b", "2"], ["a", "1"]]));
  });

  it("rejects tampering with a value, a name, the URL, an added parameter, or another token", () => {
    const params = docParams("+14158675310");
    const sig = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
    expect(verifyTwilioSignature(DOC_TOKEN, sig, DOC_URL, { ...params, Digits: "1235" })).toBe(false);
    expect(verifyTwilioSignature(DOC_TOKEN, sig, DOC_URL, { ...params, Extra: "" })).toBe(false);
    const { Digits, ...withoutDigits } = params;
    expect(verifyTwilioSignature(DOC_TOKEN, sig, DOC_URL, { ...withoutDigits, digits: Digits })).toBe(false);
    expect(verifyTwilioSignature(DOC_TOKEN, sig, "https://mycompany.com/myapp.php?foo=1&bar=3", params)).toBe(false);
    expect(verifyTwilioSignature(DOC_TOKEN, sig, "http://mycompany.com/myapp.php?foo=1&bar=2", params)).toBe(false);
    expect(verifyTwilioSignature("54321", sig, DOC_URL, params)).toBe(false);
    expect(verifyTwilioSignature(DOC_TOKEN, sig.replace("G", "H"), DOC_URL, params)).toBe(false);
  });

  it("rejects a missing or empty header and an empty token", () => {
    const params = docParams("+14158675310");
    expect(verifyTwilioSignature(DOC_TOKEN, undefined, DOC_URL, params)).toBe(false);
    expect(verifyTwilioSignature(DOC_TOKEN, "", DOC_URL, params)).toBe(false);
    expect(verifyTwilioSignature("", computeTwilioSignature("", DOC_URL, params), DOC_URL, params)).toBe(false);
  });

  it("accepts the URL with or without the scheme's default port, as Twilio's own validator does", () => {
    const params = { MessageSid: "SM1", MessageStatus: "delivered" };
    const withPort = computeTwilioSignature("tok", "https://bot.example.com:443/providers/twilio/status", params);
    expect(verifyTwilioSignature("tok", withPort, "https://bot.example.com/providers/twilio/status", params)).toBe(true);
    const without = computeTwilioSignature("tok", "https://bot.example.com/providers/twilio/status", params);
    expect(verifyTwilioSignature("tok", without, "https://bot.example.com:443/providers/twilio/status", params)).toBe(true);
    // a non-default port is part of the address
    const other = computeTwilioSignature("tok", "https://bot.example.com:8443/providers/twilio/status", params);
    expect(verifyTwilioSignature("tok", other, "https://bot.example.com/providers/twilio/status", params)).toBe(false);
  });
});
