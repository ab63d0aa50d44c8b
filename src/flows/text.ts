import type { LocalizedText } from "./schema";

/** Picks a text's version for a locale: exact, same language, English, then the first given. */
export function localize(text: LocalizedText, locale: string): string {
  if (typeof text === "string") return text;
  const lang = locale.split("_")[0]!;
  return (
    text[locale] ??
    Object.entries(text).find(([k]) => k.split("_")[0] === lang)?.[1] ??
    text.en_US ??
    Object.entries(text).find(([k]) => k.startsWith("en"))?.[1] ??
    Object.values(text)[0]!
  );
}

/** Reads `a.b.c` from nested variables. */
export function lookup(vars: Record<string, unknown>, path: string): unknown {
  let cur: unknown = vars;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Fills `{{name}}` placeholders from the variables (`contact.*` included); unknown ones become empty. */
export function interpolate(template: string, vars: Record<string, unknown>): string {
  return template.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*\}\}/g, (_, path: string) => {
    const v = lookup(vars, path);
    return v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  });
}

export function render(text: LocalizedText, locale: string, vars: Record<string, unknown>): string {
  return interpolate(localize(text, locale), vars);
}
