/** The locales our own texts exist in, and how a number's country picks one when nobody chose. */
export const LOCALES = ["en_US", "es", "pt_BR"] as const;
export type Locale = (typeof LOCALES)[number];

const SPANISH = new Set(["ES", "MX", "AR", "CO", "CL", "PE", "VE", "EC", "GT", "CU", "BO", "DO", "HN", "PY", "SV", "NI", "CR", "PA", "UY", "PR", "GQ"]);
const PORTUGUESE = new Set(["BR", "PT", "AO", "MZ", "CV", "GW", "ST", "TL"]);

export function localeFor(choice: string | null | undefined, country: string | undefined, fallback = "en_US"): string {
  if (choice) return choice;
  if (country && SPANISH.has(country)) return "es";
  if (country && PORTUGUESE.has(country)) return "pt_BR";
  return fallback;
}

/** Our text for a locale: exact, then its language, then English. */
export function pick<T>(texts: Record<Locale, T>, locale: string): T {
  if ((LOCALES as readonly string[]).includes(locale)) return texts[locale as Locale];
  if (locale.startsWith("es")) return texts.es;
  if (locale.startsWith("pt")) return texts.pt_BR;
  return texts.en_US;
}
