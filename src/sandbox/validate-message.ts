import type { z } from "zod";
import { MetaError, metaError } from "./meta-errors";
import { interactiveSchema, mediaSchema, type SendBody, templateSendSchema, textSchema } from "./send-schema";
import { checkTemplate, type RenderedTemplate } from "./templates";
import type { SandboxButton, TemplateDef } from "./types";

/** A send that passed Meta's checks: what the customer will see. */
export interface ValidatedMessage {
  type: string;
  payload: Record<string, unknown>;
  text: string;
  buttons?: SandboxButton[];
  template?: RenderedTemplate;
}

const MEDIA_TYPES = new Set(["image", "video", "audio", "document", "sticker"]);
const SUPPORTED = new Set(["text", "template", "interactive", "location", "contacts", "reaction", ...MEDIA_TYPES]);

/** Graph's way of naming a nested parameter: text['body']. */
function paramPath(path: PropertyKey[]): string {
  const [head, ...rest] = path.map(String);
  return `${head ?? ""}${rest.map((p) => `['${p}']`).join("")}`;
}

/** Maps a zod failure to Meta's 100 "Invalid parameter" with Graph's wording in the details. */
export function zodToMeta(error: z.ZodError, prefix: PropertyKey[] = []): MetaError {
  const issue = error.issues[0];
  const path = paramPath([...prefix, ...(issue?.path ?? [])]);
  const missing = issue?.code === "invalid_type" && /received undefined/.test(issue.message);
  return metaError(100, missing ? `The parameter ${path} is required.` : `Param ${path} is invalid: ${issue?.message ?? "invalid"}`);
}

function tooLong(path: string, max: number): MetaError {
  return metaError(100, `Param ${path} must be at most ${max} characters long.`);
}

function invalid(details: string): MetaError {
  return metaError(131009, details);
}

/** Limits from WA/messages/interactive-reply-buttons-messages and interactive-list-messages. */
function checkInteractive(raw: unknown): MetaError | ValidatedMessage {
  const parsed = interactiveSchema.safeParse(raw);
  if (!parsed.success) return zodToMeta(parsed.error, ["interactive"]);
  const it = parsed.data;
  const bodyText = it.body?.text ?? "";
  if (it.type === "button") {
    const buttons = it.action.buttons ?? [];
    if (buttons.length < 1 || buttons.length > 3) return invalid(`Buttons count must be between 1 and 3 (got ${buttons.length})`);
    if (bodyText.length > 1024) return tooLong("interactive['body']['text']", 1024);
    const titles = new Set<string>();
    const ids = new Set<string>();
    for (const b of buttons) {
      if (b.reply.title.length < 1 || b.reply.title.length > 20) return invalid("Button title length invalid. Min length: 1, Max length: 20");
      if (b.reply.id.length < 1 || b.reply.id.length > 256) return invalid("Button id length invalid. Min length: 1, Max length: 256");
      if (titles.has(b.reply.title)) return invalid("Button title must be unique within a message");
      if (ids.has(b.reply.id)) return invalid("Button id must be unique within a message");
      titles.add(b.reply.title);
      ids.add(b.reply.id);
    }
    return { type: "interactive", payload: raw as Record<string, unknown>, text: bodyText, buttons: buttons.map((b) => ({ title: b.reply.title, replyId: b.reply.id })) };
  }
  if (it.type === "list") {
    const sections = it.action.sections ?? [];
    const rows = sections.flatMap((s) => s.rows ?? []);
    if (!it.action.button) return metaError(131008, "The parameter interactive['action']['button'] is required.");
    if (it.action.button.length > 20) return invalid("Button label length invalid. Max length: 20");
    if (sections.length < 1 || sections.length > 10) return invalid(`Sections count must be between 1 and 10 (got ${sections.length})`);
    if (rows.length < 1 || rows.length > 10) return invalid(`Total row count exceed max allowed count: 10 (got ${rows.length})`);
    if (rows.some((r) => r.title.length > 24)) return invalid("Row title length invalid. Max length: 24");
    if (rows.some((r) => (r.description ?? "").length > 72)) return invalid("Row description length invalid. Max length: 72");
    if (new Set(rows.map((r) => r.id)).size !== rows.length) return invalid("Row id must be unique within a message");
    if (bodyText.length > 4096) return tooLong("interactive['body']['text']", 4096);
    return { type: "interactive", payload: raw as Record<string, unknown>, text: `${bodyText}\n[${it.action.button}: ${rows.map((r) => r.title).join(", ")}]` };
  }
  return { type: "interactive", payload: raw as Record<string, unknown>, text: bodyText || `[interactive ${it.type}]` };
}

/** Validates one send body the way the Cloud API does, returning Meta's error for the first problem. */
export function validateMessage(body: SendBody, templates: TemplateDef[]): MetaError | ValidatedMessage {
  const type = body.type;
  if (!SUPPORTED.has(type)) return metaError(131051, `Unsupported message type: ${type}`);
  const raw = body[type];
  if (raw === undefined) return metaError(100, `The parameter ${type} is required.`);

  if (type === "text") {
    const t = textSchema.safeParse(raw);
    if (!t.success) return zodToMeta(t.error, ["text"]);
    if (t.data.body.length === 0) return metaError(100, "The parameter text['body'] is required.");
    if (t.data.body.length > 4096) return tooLong("text['body']", 4096);
    return { type, payload: t.data, text: t.data.body };
  }
  if (type === "template") {
    const t = templateSendSchema.safeParse(raw);
    if (!t.success) return zodToMeta(t.error, ["template"]);
    const rendered = checkTemplate(templates, t.data);
    if (rendered instanceof MetaError) return rendered;
    return { type, payload: t.data, text: rendered.text, buttons: rendered.buttons, template: rendered };
  }
  if (type === "interactive") return checkInteractive(raw);
  if (MEDIA_TYPES.has(type)) {
    const m = mediaSchema.safeParse(raw);
    if (!m.success) return zodToMeta(m.error, [type]);
    if (!m.data.id && !m.data.link) return metaError(131008, `The parameter ${type}['id'] or ${type}['link'] is required.`);
    return { type, payload: m.data, text: m.data.caption ?? `[${type}]` };
  }
  return { type, payload: raw as Record<string, unknown>, text: `[${type}]` };
}
