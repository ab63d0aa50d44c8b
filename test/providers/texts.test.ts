import { resolveTextLocale, smsBody, spokenCode, voiceScript, voiceScriptText } from "../../src/providers/sms/texts";
import { renderTwiml } from "../../src/providers/voice/twiml";
import { elementsOf, parseXml, textOf } from "../../src/sandbox/twilio/xml";
import { CODE, codeMessage } from "./helpers";

const LOCALES = ["en_US", "es", "pt_BR"] as const;

describe("code texts", () => {
  it("resolves locales to en, es or pt_BR and falls back to English", () => {
    expect(resolveTextLocale("en_US")).toBe("en");
    expect(resolveTextLocale("es_MX")).toBe("es");
    expect(resolveTextLocale("es-419")).toBe("es");
    expect(resolveTextLocale("pt_BR")).toBe("pt_BR");
    expect(resolveTextLocale("pt-PT")).toBe("pt_BR");
    expect(resolveTextLocale("de_DE")).toBe("en");
    expect(resolveTextLocale("")).toBe("en");
  });

  it.each(LOCALES)("SMS in %s starts with the code and names brand, expiry and the never-share warning", (locale) => {
    const body = smsBody(codeMessage({ locale, brand: "Acme Bank", expiryMinutes: 7 }));
    expect(body.startsWith(CODE)).toBe(true);
    expect(body).toContain("Acme Bank");
    expect(body).toContain("7 minut");
    expect(body.length).toBeLessThan(320);
    const warning = { en_US: /Never share it.*never ask/, es: /No lo compartas.*nunca te lo pedirá/, pt_BR: /Não o compartilhe.*nunca vai pedir/ }[locale];
    expect(body).toMatch(warning);
  });

  it("the three languages differ and unknown locales get the English text", () => {
    const texts = LOCALES.map((locale) => smsBody(codeMessage({ locale })));
    expect(new Set(texts).size).toBe(3);
    expect(smsBody(codeMessage({ locale: "fr_FR" }))).toBe(smsBody(codeMessage({ locale: "en_US" })));
  });

  it("uses the singular for one minute", () => {
    expect(smsBody(codeMessage({ expiryMinutes: 1 }))).toContain("1 minute.");
    expect(smsBody(codeMessage({ locale: "es", expiryMinutes: 1 }))).toContain("1 minuto.");
  });

  it("never lacks the code, for any locale, code or brand", () => {
    for (const locale of [...LOCALES, "xx", "ja_JP"]) {
      for (const code of ["0000", "123456", "90817263"]) {
        const msg = codeMessage({ locale, code, brand: "Shop & Co" });
        expect(smsBody(msg)).toContain(code);
        expect(voiceScriptText(voiceScript(msg))).toContain(spokenCode(code));
      }
    }
  });

  it.each(LOCALES)("voice script in %s reads the digits one by one, twice, with pauses", (locale) => {
    const script = voiceScript(codeMessage({ locale }));
    expect(script.language).toBe({ en_US: "en-US", es: "es-MX", pt_BR: "pt-BR" }[locale]);
    const spoken = "4, 8, 2, 9, 1, 0";
    const text = voiceScriptText(script);
    expect(text.split(spoken).length - 1).toBe(2);
    expect(text).not.toContain(CODE); // never the code as one number
    expect(script.steps.filter((s) => "pause" in s).length).toBeGreaterThanOrEqual(3);
    expect(text).toContain("Acme");
    expect(text).toContain("10 minut");
  });

  it("renders TwiML that is valid XML: <Response> of <Say language voice> and <Pause>, digits separate", () => {
    for (const locale of LOCALES) {
      const twiml = renderTwiml(voiceScript(codeMessage({ locale, brand: `A&B <"Shop">` })));
      expect(twiml.startsWith("<Response>")).toBe(true);
      const root = parseXml(twiml); // throws if not well-formed
      expect(root.name).toBe("Response");
      const children = elementsOf(root);
      expect(new Set(children.map((c) => c.name))).toEqual(new Set(["Say", "Pause"]));
      const says = children.filter((c) => c.name === "Say");
      for (const say of says) expect(say.attributes).toEqual(expect.objectContaining({ language: expect.stringMatching(/^[a-z]{2}-[A-Z]{2}$/), voice: expect.stringMatching(/^Polly\./) }));
      const withDigits = says.map(textOf).filter((t) => t.includes("4, 8, 2, 9, 1, 0."));
      expect(withDigits).toHaveLength(2);
      expect(says.map(textOf).join(" ")).toContain(`A&B <"Shop">`); // escaped in XML, intact once parsed
      for (const p of children.filter((c) => c.name === "Pause")) expect(p.attributes.length).toMatch(/^[1-9]$/);
    }
  });

  it("the XML reader rejects what is not well-formed", () => {
    for (const bad of ["<Response><Say>a & b</Say></Response>", "<Response><Say></Response>", "<Response>", "<Response/><Extra/>", '<Response a="1" a="2"/>']) {
      expect(() => parseXml(bad)).toThrow();
    }
  });
});
