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

const PLACEHOLDER = /\{\{\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*\}\}/g;
/** `.` and `..` as a whole path segment, in any spelling the URL parser resolves (`%2e`, `.%2E`…). */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * An `http` step's URL with `{{var}}` placeholders filled in as URL components: every value is percent-encoded
 * with encodeURIComponent (so `/`, `?`, `#`, `&`, `=`, `%`, `@`, `:` and spaces in a customer's answer stay inside
 * their path segment or query value and can never add a segment, a parameter or a fragment). The template's own
 * `?` starts the query; its `#…` is dropped. Null when the result is unusable: a path segment that is `.` or `..`
 * (which the URL parser would resolve into another path), or no URL at all. The allow-list check comes after.
 */
export function renderUrl(template: string, vars: Record<string, unknown>): string | null {
  const hash = template.indexOf("#");
  const t = hash >= 0 ? template.slice(0, hash) : template;
  const out = t.replace(PLACEHOLDER, (_, path: string) => {
    const v = lookup(vars, path);
    return encodeURIComponent(v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  });
  let url: URL;
  try {
    url = new URL(out);
  } catch {
    return null;
  }
  // the path as written (before the parser resolves dot segments): after "scheme://authority", up to "?"
  const afterScheme = out.indexOf("//") >= 0 ? out.indexOf("//") + 2 : 0;
  const pathStart = out.indexOf("/", afterScheme);
  const queryStart = out.indexOf("?");
  const rawPath = pathStart < 0 || (queryStart >= 0 && queryStart < pathStart) ? "" : out.slice(pathStart, queryStart >= 0 ? queryStart : undefined);
  if (rawPath.split("/").some((segment) => DOT_SEGMENT.test(segment))) return null;
  url.hash = "";
  return url.toString();
}
