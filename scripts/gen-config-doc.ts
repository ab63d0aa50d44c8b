/**
 * Writes docs/configuration.md from the environment schema (src/config/env.ts): every variable, whether it is
 * required, its default, the values it accepts and its meaning. Meanings come from the JSDoc comment above the
 * variable in env.ts, else from MEANINGS below, else from the comment above it in .env.example; a variable with
 * none of them fails the script, so a new variable cannot go undocumented.
 *
 *   npm run docs:config            rewrites docs/configuration.md
 *   npm run docs:config -- --check exits 1 when the committed file is out of date (CI, test/ops)
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DEMO_DEFAULTS } from "../src/config/demo-defaults";
import { envSchema } from "../src/config/env";

const ROOT = path.join(__dirname, "..");
export const CONFIG_DOC_PATH = path.join(ROOT, "docs", "configuration.md");

/** Meanings for variables whose env.ts has no JSDoc comment; they win over the terser .env.example comments. */
const MEANINGS: Record<string, string> = {
  LOG_LEVEL: "Least severe level written; logs are JSON lines on stdout (codes, tokens and message bodies are never logged).",
  WHATSAPP_OTP_TEMPLATE: "The name of the default tenant's approved authentication template that carries codes (per-locale templates live in tenant settings).",
  WHATSAPP_OTP_TEMPLATE_LANGUAGE: "The language code of that template, as approved in WhatsApp Manager.",
  OUTBOUND_TIMEOUT_MS: "Timeout of one Cloud API call, in milliseconds; a call that times out has an unknown outcome and is retried.",
  OUTBOUND_MAX_ATTEMPTS: "Attempts of one outbound message before a transient failure is final.",
  INBOUND_CONCURRENCY: "Inbound messages handled at once per worker process.",
  OUTBOUND_CONCURRENCY: "Outbound messages sent at once per worker process.",
  VOICE_PROVIDER: "Voice-call fallback channel for codes: none (off), sandbox (recorded in memory, for the demo) or twilio.",
  NODE_ENV: "`production` in production; `development` turns on human-readable (pretty) logs and lets flow `http` steps and event callbacks use plain http to 127.0.0.1, localhost and [::1] (never allowed otherwise).",
  PORT: "The HTTP port of the API (webhook, Verify and admin APIs, health, metrics). `0` picks a free port.",
  GRAPH_API_BASE_URL: "Where the WhatsApp Cloud API lives. Point it at the Cloud API sandbox for local tests (`npm run demo` does).",
  GRAPH_API_VERSION: "The Graph API version path segment of every Cloud API call.",
  WHATSAPP_DISPLAY_PHONE_NUMBER: "The displayed business number (digits), used in texts and the sandbox.",
};

const REQUIRED_MARK = "**required**";

interface ZodLike {
  def: {
    type: string;
    defaultValue?: unknown;
    innerType?: ZodLike;
    checks?: { _zod: { def: { check: string; format?: string; pattern?: RegExp; error?: (issue: unknown) => unknown } } }[];
  };
  minValue?: number | null;
  maxValue?: number | null;
  isInt?: boolean;
  minLength?: number | null;
  options?: string[];
}

function describe(schema: ZodLike): { required: boolean; defaultValue?: string; accepts: string } {
  let s = schema;
  let required = true;
  let defaultValue: string | undefined;
  for (;;) {
    if (s.def.type === "default") {
      required = false;
      const v = s.def.defaultValue;
      defaultValue = typeof v === "string" ? v : JSON.stringify(v);
      s = s.def.innerType!;
    } else if (s.def.type === "optional") {
      required = false;
      s = s.def.innerType!;
    } else break;
  }
  let accepts = "text";
  if (s.def.type === "enum" && s.options) accepts = s.options.map((o) => `\`${o}\``).join(", ");
  else if (s.def.type === "number") {
    const min = s.minValue ?? undefined;
    const max = s.maxValue ?? undefined;
    accepts = `${s.isInt ? "integer" : "number"}${min !== undefined && max !== undefined ? ` ${min.toLocaleString("en")}–${max.toLocaleString("en")}` : ""}`;
  } else if (s.def.type === "string") {
    const checks = (s.def.checks ?? []).map((c) => c._zod.def);
    const regex = checks.find((c) => c.format === "regex")?.pattern;
    // refinements (URLs, the base64 key) carry their rule in their message: "must be a URL (http: or https:)"
    const custom = checks.find((c) => c.check === "custom")?.error?.({});
    if (typeof custom === "string") accepts = custom.replace(/^must be /, "");
    else if (regex) accepts = `text matching \`${regex.source}\``;
    else if (s.minLength === 1) accepts = "non-empty text";
    else if (s.minLength) accepts = `text, at least ${s.minLength} characters`;
  }
  return { required, defaultValue, accepts };
}

/** JSDoc comments directly above `KEY:` in env.ts. */
function jsdocMeanings(source: string): Map<string, string> {
  const lines = source.split("\n");
  const out = new Map<string, string>();
  lines.forEach((line, i) => {
    const key = /^\s+([A-Z][A-Z0-9_]*):\s/.exec(line)?.[1];
    if (!key || i === 0 || !lines[i - 1]!.trim().endsWith("*/")) return;
    const parts: string[] = [];
    for (let j = i - 1; j >= 0; j--) {
      parts.unshift(lines[j]!);
      if (lines[j]!.includes("/**")) break;
    }
    const text = parts
      .join("\n")
      .replace(/\/\*\*|\*\//g, "")
      .split("\n")
      .map((l) => l.replace(/^\s*\*\s?/, "").trim())
      .filter(Boolean)
      .join(" ");
    if (text) out.set(key, text);
  });
  return out;
}

/**
 * Comments above `KEY=` in .env.example. A comment above several assignments in a row describes them together
 * (OUTBOUND_TIMEOUT_MS and OUTBOUND_MAX_ATTEMPTS) when their names share a first or last word; otherwise it
 * belongs to the first one only.
 */
function exampleMeanings(source: string): Map<string, string> {
  const out = new Map<string, string>();
  let comment: string[] = [];
  let groupFirst: string | null = null;
  let lastWasAssignment = false;
  const related = (a: string, b: string) => {
    const wa = a.split("_");
    const wb = b.split("_");
    return wa[0] === wb[0] || wa[wa.length - 1] === wb[wb.length - 1];
  };
  for (const raw of source.split("\n")) {
    const line = raw.trim();
    if (line === "") {
      comment = [];
      groupFirst = null;
      lastWasAssignment = false;
    } else if (line.startsWith("#")) {
      if (lastWasAssignment) {
        comment = [];
        groupFirst = null;
      }
      lastWasAssignment = false;
      if (!/^#\s*---/.test(line)) comment.push(line.replace(/^#\s?/, ""));
    } else {
      const key = /^([A-Z][A-Z0-9_]*)=/.exec(line)?.[1];
      if (!key) continue;
      if (comment.length && (groupFirst === null || related(groupFirst, key))) out.set(key, comment.join(" "));
      groupFirst ??= key;
      lastWasAssignment = true;
    }
  }
  return out;
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function renderConfigDoc(): string {
  const jsdoc = jsdocMeanings(readFileSync(path.join(ROOT, "src", "config", "env.ts"), "utf8"));
  const example = exampleMeanings(readFileSync(path.join(ROOT, ".env.example"), "utf8"));
  const missing: string[] = [];
  const rows: string[] = [];
  const shape = envSchema.shape as unknown as Record<string, ZodLike>;
  for (const [key, schema] of Object.entries(shape)) {
    const d = describe(schema);
    const meaning = jsdoc.get(key) ?? MEANINGS[key] ?? example.get(key);
    if (!meaning) missing.push(key);
    const def = d.required ? REQUIRED_MARK : d.defaultValue === undefined ? "unset" : d.defaultValue === "" ? '`""` (empty)' : `\`${d.defaultValue}\``;
    rows.push(`| \`${key}\` | ${cell(def)} | ${cell(d.accepts)} | ${cell(meaning ?? "")} |`);
  }
  if (missing.length) throw new Error(`no meaning for ${missing.join(", ")}: add a JSDoc comment in src/config/env.ts or a comment in .env.example`);
  const required = Object.entries(shape).filter(([, s]) => describe(s).required).map(([k]) => `\`${k}\``);
  return [
    "# Configuration",
    "",
    "<!-- Generated by scripts/gen-config-doc.ts from src/config/env.ts and .env.example: do not edit by hand. -->",
    "<!-- Regenerate with `npm run docs:config`; a test fails while this file is out of date. -->",
    "",
    "Every variable the bot reads. They are read once at start-up (`src/config/env.ts`) and validated: a missing or",
    "malformed value stops the process with one message that names every bad variable. An empty value counts as",
    "unset. [.env.example](../.env.example) is a starting point for a `.env` file.",
    "",
    `Required: ${required.join(", ")}.`,
    "",
    "| variable | default | accepts | meaning |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
    "Cross-field rule: when `SMS_PROVIDER` or `VOICE_PROVIDER` is `twilio`, `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`",
    "and `TWILIO_FROM_NUMBER` are required.",
    "",
    `\`npm run demo\` needs none of them: it supplies local defaults for ${Object.keys(DEMO_DEFAULTS).map((k) => `\`${k}\``).join(", ")}`,
    "(fixed, public, insecure values: never use them elsewhere) and points `GRAPH_API_BASE_URL` at its own Cloud API sandbox.",
    "",
    "Secrets (`WHATSAPP_APP_SECRET`, `WHATSAPP_ACCESS_TOKEN`, `ADMIN_API_KEY`, `SECRETS_KEY`, `TWILIO_AUTH_TOKEN`) belong",
    "in your secret store, not in the image or the repository. Keep `SECRETS_KEY` for the life of the deployment:",
    "see [docs/deploy.md](deploy.md#secrets_key).",
    "",
  ].join("\n");
}

if (require.main === module) {
  const doc = renderConfigDoc();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(CONFIG_DOC_PATH, "utf8");
    } catch {
      /* missing counts as out of date */
    }
    if (current !== doc) {
      process.stderr.write("docs/configuration.md is out of date: run `npm run docs:config`\n");
      process.exit(1);
    }
    process.stdout.write("docs/configuration.md is up to date\n");
  } else {
    writeFileSync(CONFIG_DOC_PATH, doc);
    process.stdout.write(`wrote ${path.relative(process.cwd(), CONFIG_DOC_PATH)}\n`);
  }
}
