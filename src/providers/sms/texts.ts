import type { CodeMessage } from "../ports";

/**
 * The words of the fallback channels: the SMS body and the spoken voice script, in English, Spanish and Brazilian
 * Portuguese (any other locale gets English). Each says the code, the brand, the expiry, and that the code must
 * never be shared and that we will never ask for it.
 *
 * The SMS starts with the code so it shows in a lock-screen preview and OS autofill picks it up.
 *
 * The voice script reads the code one digit at a time, separated by commas, twice, with pauses between parts.
 * Twilio's <Say> speaks "12345" as a number ("twelve thousand…") but "1 2 3 4 5" digit by digit, and reads commas
 * and periods as natural pauses (TwiML <Say> reference, https://www.twilio.com/docs/voice/twiml/say and the older
 * copy at http://www.twilio.com/docs/api/2008-08-01/twiml/say).
 */
export type TextLocale = "en" | "es" | "pt_BR";

export type CodeTextInput = Pick<CodeMessage, "code" | "brand" | "expiryMinutes" | "locale">;

/** en_US, en-GB, es, es_MX, pt_BR, pt-PT… → the text set to use. Portuguese of any region gets pt_BR. */
export function resolveTextLocale(locale: string | undefined): TextLocale {
  const lang = (locale ?? "").trim().toLowerCase().split(/[_-]/)[0];
  if (lang === "es") return "es";
  if (lang === "pt") return "pt_BR";
  return "en";
}

function minutes(n: number, locale: TextLocale): string {
  const one = n === 1;
  switch (locale) {
    case "es":
    case "pt_BR":
      return `${n} ${one ? "minuto" : "minutos"}`;
    default:
      return `${n} ${one ? "minute" : "minutes"}`;
  }
}

/** Collapses whitespace so a brand or code can never add lines or markup-looking layout to a text. */
function clean(value: string): string {
  return value.replace(/\s+/g, " ").trim();
}

const SMS: Record<TextLocale, (code: string, brand: string, expiry: string) => string> = {
  en: (code, brand, expiry) =>
    `${code} is your ${brand} verification code. It expires in ${expiry}. Never share it with anyone: ${brand} will never ask you for it.`,
  es: (code, brand, expiry) =>
    `${code} es tu código de verificación de ${brand}. Caduca en ${expiry}. No lo compartas con nadie: ${brand} nunca te lo pedirá.`,
  pt_BR: (code, brand, expiry) =>
    `${code} é o seu código de verificação de ${brand}. Ele expira em ${expiry}. Não o compartilhe com ninguém: ${brand} nunca vai pedir este código.`,
};

export function smsBody(msg: CodeTextInput): string {
  const locale = resolveTextLocale(msg.locale);
  return SMS[locale](clean(msg.code), clean(msg.brand), minutes(msg.expiryMinutes, locale));
}

// ---- voice -----------------------------------------------------------------------------------------------------

export type VoiceStep = { say: string } | { pause: number };

export interface VoiceScript {
  /** BCP-47 tag for <Say language="…"> */
  language: string;
  /** a Twilio <Say> voice that speaks `language` */
  voice: string;
  steps: VoiceStep[];
}

/**
 * <Say> language and voice per text locale. The basic `man`/`woman` voices only speak en, en-gb, es, fr, de, so
 * Brazilian Portuguese needs a neural/Polly voice; Twilio accepts Amazon Polly voices as `Polly.<Name>` (TwiML <Say>
 * reference above). Joanna (en-US), Mia (es-MX) and Camila (pt-BR) are Polly voices of those locales
 * (https://docs.aws.amazon.com/polly/latest/dg/available-voices.html).
 */
export const VOICE_FOR_LOCALE: Record<TextLocale, { language: string; voice: string }> = {
  en: { language: "en-US", voice: "Polly.Joanna" },
  es: { language: "es-MX", voice: "Polly.Mia" },
  pt_BR: { language: "pt-BR", voice: "Polly.Camila" },
};

/** "482910" → "4, 8, 2, 9, 1, 0": one character at a time, with a spoken pause between each. */
export function spokenCode(code: string): string {
  return Array.from(clean(code).replace(/\s/g, "")).join(", ");
}

const VOICE: Record<TextLocale, { intro: (brand: string) => string; code: string; again: string; outro: (brand: string, expiry: string) => string }> = {
  en: {
    intro: (brand) => `Hello. This is ${brand} with your verification code.`,
    code: "Your code is:",
    again: "Once more, your code is:",
    outro: (brand, expiry) => `The code expires in ${expiry}. Never share it with anyone. ${brand} will never ask you for it. Goodbye.`,
  },
  es: {
    intro: (brand) => `Hola. Le llamamos de ${brand} con su código de verificación.`,
    code: "Su código es:",
    again: "Una vez más, su código es:",
    outro: (brand, expiry) => `El código caduca en ${expiry}. No lo comparta con nadie. ${brand} nunca se lo pedirá. Adiós.`,
  },
  pt_BR: {
    intro: (brand) => `Olá. Aqui é ${brand} com o seu código de verificação.`,
    code: "O seu código é:",
    again: "Repetindo, o seu código é:",
    outro: (brand, expiry) => `O código expira em ${expiry}. Não o compartilhe com ninguém. ${brand} nunca vai pedir este código. Até logo.`,
  },
};

export function voiceScript(msg: CodeTextInput): VoiceScript {
  const locale = resolveTextLocale(msg.locale);
  const t = VOICE[locale];
  const brand = clean(msg.brand);
  const digits = `${spokenCode(msg.code)}.`;
  return {
    ...VOICE_FOR_LOCALE[locale],
    steps: [
      { pause: 1 }, // the first words are often lost while the phone is brought to the ear
      { say: t.intro(brand) },
      { pause: 1 },
      { say: `${t.code} ${digits}` },
      { pause: 2 },
      { say: `${t.again} ${digits}` },
      { pause: 1 },
      { say: t.outro(brand, minutes(msg.expiryMinutes, locale)) },
    ],
  };
}

/** The script as plain text (what the sandbox records): the spoken parts, in order. */
export function voiceScriptText(script: VoiceScript): string {
  return script.steps.flatMap((s) => ("say" in s ? [s.say] : [])).join(" ");
}
