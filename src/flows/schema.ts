import { parseDocument, YAMLParseError, type Document } from "yaml";
import { z } from "zod";
import { regexProblem } from "./regex";

/**
 * The flow document: a conversation a business defines as data (JSON or YAML), validated by this one schema.
 * Every error names the exact path of the mistake ("steps[2].next: no step with id 'x'"). The minimal document
 *   {"name":"ping","triggers":[{"type":"keyword","keywords":["ping-42"]}],"steps":[{"id":"answer","type":"send","text":"pong"}]}
 * is valid and does what it says. The full reference is docs/flows.md.
 */

/** A tenant's regular expression: it runs on RE2 (src/flows/regex.ts), so what RE2 cannot take is refused here. */
const regex = z
  .string()
  .max(500)
  .superRefine((p, ctx) => {
    const problem = regexProblem(p);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const id = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits and _.- (at most 64)");
const varName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/, "a variable name: letters, digits and _, not starting with a digit");

/** A text, or one per locale ({"en_US": "…", "es": "…", "pt_BR": "…"}); `{{var}}` placeholders are filled in. */
export const localizedText = z.union([
  z.string().min(1).max(4096),
  z.record(z.string().regex(/^[a-z]{2,3}(_[A-Z]{2})?$/, "a locale such as en_US, es, pt_BR"), z.string().min(1).max(4096)).refine((r) => Object.keys(r).length > 0, "at least one locale"),
]);
export type LocalizedText = z.infer<typeof localizedText>;

/** Keywords: one list for every locale, or one list per locale. */
const keywordList = z.array(z.string().min(1).max(200)).min(1);
const keywords = z.union([keywordList, z.record(z.string(), keywordList)]);

export const triggerSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("keyword"), keywords, match: z.enum(["exact", "contains", "starts_with"]).default("exact") }),
  z.strictObject({
    type: z.literal("pattern"),
    pattern: regex.pipe(z.string().min(1)),
  }),
  z.strictObject({ type: z.literal("button"), ids: z.array(z.string().min(1).max(256)).min(1) }),
  z.strictObject({ type: z.literal("new_contact") }),
  z.strictObject({ type: z.literal("api") }),
]);
export type Trigger = z.infer<typeof triggerSchema>;

// --- steps ---------------------------------------------------------------------------------------------------
const next = id.optional();
const button = z.strictObject({ id: z.string().min(1).max(256), title: localizedText, next: next });
const listRow = z.strictObject({ id: z.string().min(1).max(200), title: localizedText, description: localizedText.optional(), next: next });

const templateRef = z.strictObject({
  name: z.string().regex(/^[a-z0-9_]{1,512}$/),
  language: z.string().min(2).max(15),
  /** body parameters in order ({{var}} placeholders are filled in) */
  parameters: z.array(z.string().max(1024)).default([]),
});

const base = { id, next };

export const sendStep = z
  .strictObject({
    ...base,
    type: z.literal("send"),
    text: localizedText.optional(),
    /** up to 3 reply buttons (Meta's limit); a tap continues at the button's `next`, else at the step's */
    buttons: z.array(button).min(1).max(3).optional(),
    /** a list message: up to 10 rows in all */
    list: z
      .strictObject({
        button: localizedText,
        sections: z.array(z.strictObject({ title: localizedText.optional(), rows: z.array(listRow).min(1).max(10) })).min(1).max(10),
      })
      .optional(),
    /** a template (the only kind of message allowed outside the 24-hour window) */
    template: templateRef.optional(),
    /** used instead of free text when the customer-service window is closed; without it the step is skipped */
    templateOutsideWindow: templateRef.optional(),
  })
  .refine((s) => s.text !== undefined || s.template !== undefined, { message: "a send step needs text or template", path: ["text"] })
  .refine((s) => !(s.buttons && s.list), { message: "buttons and list cannot be combined", path: ["list"] })
  .refine((s) => !s.list || s.list.sections.reduce((n, sec) => n + sec.rows.length, 0) <= 10, { message: "a list holds at most 10 rows in all", path: ["list", "sections"] })
  .refine((s) => (!s.buttons && !s.list) || s.text !== undefined, { message: "buttons and lists need a text body", path: ["text"] });

export const askStep = z.strictObject({
  ...base,
  type: z.literal("ask"),
  text: localizedText,
  input: z.discriminatedUnion("type", [
    z.strictObject({ type: z.literal("choice"), choices: z.array(z.strictObject({ id: z.string().min(1).max(200), title: localizedText, value: z.string().max(200).optional(), next })).min(1).max(10) }),
    z
      .strictObject({ type: z.literal("digits"), min: z.number().int().min(1).max(64).default(1), max: z.number().int().min(1).max(64).default(64) })
      .refine((i) => i.min <= i.max, { message: "min must not exceed max", path: ["min"] }),
    z.strictObject({ type: z.literal("email") }),
    z
      .strictObject({ type: z.literal("text"), min: z.number().int().min(0).max(4096).default(1), max: z.number().int().min(1).max(4096).default(1024), pattern: regex.optional() })
      .refine((i) => i.min <= i.max, { message: "min must not exceed max", path: ["min"] }),
  ]),
  /** the variable the answer is saved in */
  save: varName,
  /** the answer is a secret (a PIN, a code): stored redacted, never echoed */
  secret: z.boolean().default(false),
  /** how often an invalid answer is asked again before giving up */
  retries: z.number().int().min(0).max(10).default(2),
  invalidText: localizedText.optional(),
  /** where to go after the retries are used up (default: end the flow) */
  onInvalid: id.optional(),
});

const condition = z.strictObject({
  var: z.string().min(1).max(100),
  equals: z.union([z.string(), z.number(), z.boolean()]).optional(),
  in: z.array(z.union([z.string(), z.number()])).optional(),
  matches: regex.optional(),
  exists: z.boolean().optional(),
  gt: z.number().optional(),
  lt: z.number().optional(),
});
export type Condition = z.infer<typeof condition>;

export const branchStep = z.strictObject({
  id,
  type: z.literal("branch"),
  cases: z.array(z.strictObject({ when: condition, next: id })).min(1).max(50),
  default: id,
});

export const setStep = z.strictObject({ ...base, type: z.literal("set"), values: z.record(varName, z.union([z.string().max(4096), z.number(), z.boolean(), z.null()])) });

export const otpRequestStep = z.strictObject({
  ...base,
  type: z.literal("otp_request"),
  purpose: z.string().regex(/^[a-z0-9_.-]{1,40}$/).default("login"),
  channel: z.enum(["whatsapp", "sms", "voice"]).optional(),
  /** the number to verify; default: the contact's own number. `{{var}}` allowed (e.g. a new number) */
  to: z.string().max(64).optional(),
  /** where to go when no code can be sent (blocked, limits, invalid number) */
  onError: id.optional(),
});

export const otpVerifyStep = z.strictObject({
  id,
  type: z.literal("otp_verify"),
  text: localizedText,
  purpose: z.string().regex(/^[a-z0-9_.-]{1,40}$/).default("login"),
  to: z.string().max(64).optional(),
  approved: id,
  /** default: ask again, saying how many tries are left */
  wrong: id.optional(),
  expired: id.optional(),
  locked: id.optional(),
});

export const pinSetStep = z.strictObject({ ...base, type: z.literal("pin_set"), text: localizedText, confirmText: localizedText, mismatchText: localizedText.optional(), weakText: localizedText.optional() });
export const pinVerifyStep = z.strictObject({ id, type: z.literal("pin_verify"), text: localizedText, approved: id, wrong: id.optional(), locked: id.optional(), notSet: id.optional() });

export const httpStep = z.strictObject({
  ...base,
  type: z.literal("http"),
  url: z.string().url().max(2048),
  method: z.enum(["GET", "POST"]).default("POST"),
  /** variables sent in the signed JSON body (default: all of the session's non-secret variables) */
  body: z.array(varName).optional(),
  timeoutMs: z.number().int().min(100).max(10_000).default(5_000),
  /** more attempts after a timeout, a network error, 429 or 5xx, with the same Idempotency-Key (0.5 s, 1 s, 2 s… apart) */
  retries: z.number().int().min(0).max(5).default(0),
  /** the JSON response's top-level fields are saved under this prefix (e.g. "api" → {{api.status}}) */
  save: varName.optional(),
  onError: id.optional(),
});

/**
 * A business action the bot performs (journeys: mark the contact verified, list or revoke its logins, change its
 * number, send a PIN reset link, tell the business…). The available actions are registered by the deployment
 * (src/journeys/actions.ts); `params` values may use {{var}}. The action's result data is saved under `save`.
 */
export const ACTIONS = [
  "mark_verified", "clear_verified", "list_logins", "revoke_logins", "revoke_login", "change_number", "pin_status",
  "request_pin_reset", "remove_pin", "set_recovery_email", "notify_business", "report_unauthorized", "clear_reverify",
  "cancel_pin_reset",
] as const;
export const actionStep = z.strictObject({
  ...base,
  type: z.literal("action"),
  action: z.enum(ACTIONS),
  params: z.record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/), z.union([z.string().max(4096), z.number(), z.boolean()])).default({}),
  save: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/).optional(),
  onError: id.optional(),
});

export const handoffStep = z.strictObject({ ...base, type: z.literal("handoff"), text: localizedText.optional(), reason: z.string().max(200).optional() });
export const gotoStep = z.strictObject({ id, type: z.literal("goto"), step: id.optional(), flow: z.string().max(64).optional() }).refine((s) => s.step || s.flow, { message: "goto needs step or flow", path: ["step"] });
export const endStep = z.strictObject({ id, type: z.literal("end"), text: localizedText.optional() });

export const stepSchema = z.union([
  sendStep, askStep, branchStep, setStep, otpRequestStep, otpVerifyStep, pinSetStep, pinVerifyStep, httpStep, handoffStep, gotoStep, endStep, actionStep,
]);
export type Step = z.infer<typeof stepSchema>;
export type StepType = Step["type"];
const STEP_TYPES = ["send", "ask", "branch", "set", "otp_request", "otp_verify", "pin_set", "pin_verify", "http", "handoff", "goto", "end", "action"] as const;

export const flowDocumentSchema = z.strictObject({
  $schema: z.string().optional(),
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "lowercase letters, digits, _ and - (at most 64), starting with a letter or digit"),
  description: z.string().max(2000).optional(),
  /** ignored on publish: the server numbers versions */
  version: z.number().int().optional(),
  triggers: z.array(triggerSchema).max(50).default([]),
  /** the first step; default: the first in `steps` */
  start: id.optional(),
  variables: z.record(varName, z.union([z.string(), z.number(), z.boolean(), z.null()])).default({}),
  steps: z.array(z.unknown()).min(1).max(500),
});

export type FlowDefinition = Omit<z.infer<typeof flowDocumentSchema>, "steps"> & { steps: Step[] };
export interface FlowError {
  path: string;
  message: string;
}
export type FlowValidation = { ok: true; flow: FlowDefinition } | { ok: false; errors: FlowError[] };

function pathOf(parts: PropertyKey[]): string {
  return parts.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), "");
}

/** Step targets a step may point to, by field, for the cross-reference check. */
function targets(step: Step): { path: (string | number)[]; id: string }[] {
  const out: { path: (string | number)[]; id: string }[] = [];
  const add = (path: (string | number)[], v: string | undefined) => v && out.push({ path, id: v });
  const s = step as Record<string, any>;
  for (const k of ["next", "onInvalid", "onError", "approved", "wrong", "expired", "locked", "notSet", "default"]) add([k], s[k]);
  if (step.type === "goto" && step.step) add(["step"], step.step);
  if (step.type === "branch") step.cases.forEach((c, i) => add(["cases", i, "next"], c.next));
  if (step.type === "send") {
    step.buttons?.forEach((b, i) => add(["buttons", i, "next"], b.next));
    step.list?.sections.forEach((sec, si) => sec.rows.forEach((r, ri) => add(["list", "sections", si, "rows", ri, "next"], r.next)));
  }
  if (step.type === "ask" && step.input.type === "choice") step.input.choices.forEach((c, i) => add(["input", "choices", i, "next"], c.next));
  return out;
}

/** Validates a flow document; on failure returns every error with its path. */
export function validateFlow(input: unknown): FlowValidation {
  const errors: FlowError[] = [];
  const doc = flowDocumentSchema.safeParse(input);
  if (!doc.success) {
    for (const i of doc.error.issues) errors.push({ path: pathOf(i.path) || "(root)", message: i.message });
  }
  const rawSteps = Array.isArray((input as { steps?: unknown })?.steps) ? ((input as { steps: unknown[] }).steps) : [];
  const steps: Step[] = [];
  const parsedAt = new Map<number, Step>();
  rawSteps.forEach((raw, i) => {
    const type = (raw as { type?: unknown })?.type;
    if (typeof type !== "string" || !(STEP_TYPES as readonly string[]).includes(type)) {
      errors.push({ path: `steps[${i}].type`, message: `unknown step type ${JSON.stringify(type)}; one of ${STEP_TYPES.join(", ")}` });
      return;
    }
    const parsed = stepSchema.safeParse(raw);
    if (!parsed.success) {
      // report the issues of the union member of this type only
      const member = [sendStep, askStep, branchStep, setStep, otpRequestStep, otpVerifyStep, pinSetStep, pinVerifyStep, httpStep, handoffStep, gotoStep, endStep, actionStep][STEP_TYPES.indexOf(type as StepType)]!;
      const r = member.safeParse(raw);
      for (const issue of r.success ? parsed.error.issues : r.error.issues) errors.push({ path: pathOf([`steps`, i, ...issue.path]), message: issue.message });
      return;
    }
    steps.push(parsed.data);
    parsedAt.set(i, parsed.data);
  });
  // cross-references, reported alongside every other mistake: unique ids, every target exists, start exists
  const ids = new Map<string, number>();
  rawSteps.forEach((raw, i) => {
    const sid = (raw as { id?: unknown })?.id;
    if (typeof sid !== "string") return;
    if (ids.has(sid)) errors.push({ path: `steps[${i}].id`, message: `duplicate step id '${sid}' (also steps[${ids.get(sid)}])` });
    else ids.set(sid, i);
  });
  parsedAt.forEach((s, i) => {
    for (const t of targets(s)) if (!ids.has(t.id)) errors.push({ path: pathOf(["steps", i, ...t.path]), message: `no step with id '${t.id}'` });
  });
  const start = (input as { start?: unknown })?.start;
  if (typeof start === "string" && !ids.has(start)) errors.push({ path: "start", message: `no step with id '${start}'` });
  if (errors.length > 0 || !doc.success) return { ok: false, errors: dedupe(errors) };
  return { ok: true, flow: { ...doc.data, steps } };
}

function dedupe(errors: FlowError[]): FlowError[] {
  const seen = new Set<string>();
  return errors.filter((e) => (seen.has(e.path + e.message) ? false : (seen.add(e.path + e.message), true)));
}

/** Nesting a flow document may have ({} and [] levels): real flows use about 8. */
export const MAX_FLOW_DEPTH = 64;
/** Leading spaces a YAML line may have (block nesting is bounded by it). */
export const MAX_FLOW_INDENT = 256;
/** Characters a flow document may have. */
export const MAX_FLOW_TEXT = 1_000_000;
/** YAML aliases a document may expand (`yaml`'s guard against "billion laughs"; flows need none). */
export const MAX_FLOW_ALIASES = 100;

/**
 * Why `text` is refused before any parser sees it, or null. One linear pass over the characters: the bracket depth
 * (outside quoted strings) and, for YAML, the indentation. A parser given 0.5 MB of `[` recurses for seconds (or
 * runs out of memory); this costs a millisecond.
 */
export function flowTextProblem(text: string, format: "json" | "yaml"): string | null {
  if (text.length > MAX_FLOW_TEXT) return `longer than ${MAX_FLOW_TEXT} characters`;
  let depth = 0;
  let quote: string | null = null;
  let lineStart = true;
  let indent = 0;
  // the last character that was not a space: in YAML a quote opens a string only where a value starts (`It's` is
  // plain text), so an apostrophe cannot hide brackets from this scan
  let prev = "\n";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
      prev = c;
      continue;
    }
    if (c === "\n") {
      lineStart = true;
      indent = 0;
      prev = c;
      continue;
    }
    if (lineStart) {
      if (c === " ") {
        if (format === "yaml" && ++indent > MAX_FLOW_INDENT) return `indented more than ${MAX_FLOW_INDENT} spaces`;
        continue;
      }
      lineStart = false;
    }
    if (c === '"' && (format === "json" || /[\n:\-[{,?]/.test(prev))) quote = c;
    else if (c === "'" && format === "yaml" && /[\n:\-[{,?]/.test(prev)) quote = c;
    else if (c === "[" || c === "{") {
      if (++depth > MAX_FLOW_DEPTH) return `nested too deeply (more than ${MAX_FLOW_DEPTH} levels)`;
    } else if (c === "]" || c === "}") depth = Math.max(0, depth - 1);
    if (c !== " " && c !== "\t") prev = c;
  }
  return null;
}

export type ParsedFlowText = { ok: true; data: unknown; doc?: Document } | { ok: false; errors: FlowError[] };

/**
 * The text parsed once, after the pre-scan: JSON with JSON.parse; YAML into a `yaml` Document (returned too, so a
 * caller that needs source positions reuses it instead of parsing again), expanded with at most MAX_FLOW_ALIASES
 * aliases.
 */
export function parseFlowData(text: string, format: "json" | "yaml"): ParsedFlowText {
  const label = format === "yaml" ? "YAML" : "JSON";
  const problem = flowTextProblem(text, format);
  if (problem) return { ok: false, errors: [{ path: "(root)", message: `not valid ${label}: ${problem}` }] };
  try {
    if (format === "json") return { ok: true, data: JSON.parse(text) };
    const doc = parseDocument(text, { prettyErrors: true });
    const first = doc.errors[0];
    if (first) {
      const where = first.linePos ? ` (line ${first.linePos[0].line})` : "";
      return { ok: false, errors: [{ path: "(root)", message: `not valid YAML${where}: ${first.message.split("\n")[0]}` }] };
    }
    return { ok: true, data: doc.toJS({ maxAliasCount: MAX_FLOW_ALIASES }), doc };
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` (line ${err.linePos[0].line})` : "";
    // a parser that ran out of stack says so in its message: an internal detail, answered as what it means
    const reason = /call stack|too much recursion/i.test((err as Error).message) ? "nested too deeply" : (err as Error).message.split("\n")[0];
    return { ok: false, errors: [{ path: "(root)", message: `not valid ${label}${where}: ${reason}` }] };
  }
}

/** Parses a flow file's text (JSON, or YAML for .yaml/.yml) once, after the pre-scan, then validates it. */
export function parseFlowText(text: string, filename = "flow.json"): FlowValidation {
  const parsed = parseFlowData(text, /\.ya?ml$/i.test(filename) ? "yaml" : "json");
  return parsed.ok ? validateFlow(parsed.data) : { ok: false, errors: parsed.errors };
}
