import type { MetaError } from "./meta-errors";
import { metaError } from "./meta-errors";
import type { TemplateSend } from "./send-schema";
import type { SandboxButton, TemplateDef } from "./types";

/**
 * Meta's fixed authentication-template text (WA/templates/authentication-templates): "<code> is your verification
 * code." plus the optional security recommendation, and a copy-code button (type `otp` at creation, `URL` after).
 */
export const DEFAULT_TEMPLATES: TemplateDef[] = [
  {
    name: "verification_code",
    language: "en_US",
    category: "AUTHENTICATION",
    body: "{{1}} is your verification code. For your security, do not share this code.",
    buttons: [{ type: "url", text: "Copy code", hasParameter: true }],
  },
  {
    name: "verification_code",
    language: "es",
    category: "AUTHENTICATION",
    body: "Tu código de verificación es {{1}}. Por tu seguridad, no lo compartas.",
    buttons: [{ type: "url", text: "Copiar código", hasParameter: true }],
  },
  {
    name: "verification_code",
    language: "pt_BR",
    category: "AUTHENTICATION",
    body: "Seu código de verificação é {{1}}. Para sua segurança, não o compartilhe.",
    buttons: [{ type: "url", text: "Copiar código", hasParameter: true }],
  },
];

/** Distinct positional variables of a template body: "{{1}} … {{2}} … {{1}}" has 2. */
export function bodyVariableCount(body: string): number {
  return new Set([...body.matchAll(/\{\{\s*([\w]+)\s*\}\}/g)].map((m) => m[1])).size;
}

export interface RenderedTemplate {
  def: TemplateDef;
  text: string;
  buttons: SandboxButton[];
}

function paramText(p: { type: string; text?: string; parameter_name?: string } & Record<string, unknown>): string {
  if (typeof p.text === "string") return p.text;
  const inner = p[p.type];
  if (inner && typeof inner === "object" && "fallback_value" in inner) return String((inner as { fallback_value: unknown }).fallback_value);
  return `[${p.type}]`;
}

/**
 * Checks a template send against the approved template the way Meta does, in Meta's order: the template must exist in
 * that language (132001, HTTP 404), body parameters must match the body's variables (132000), and a url button with a
 * variable (the copy-code button of an auth template) needs its parameter (131008
 * "Button at index 0 of type Url requires a parameter").
 */
export function checkTemplate(templates: TemplateDef[], send: TemplateSend): MetaError | RenderedTemplate {
  const lang = send.language.code;
  const def = templates.find((t) => t.name === send.name && t.language === lang);
  if (!def) return metaError(132001, `template name (${send.name}) does not exist in ${lang}`);

  const components = send.components ?? [];
  const bodyParams = components.filter((c) => c.type.toLowerCase() === "body").flatMap((c) => c.parameters ?? []);
  const expected = bodyVariableCount(def.body);
  if (bodyParams.length !== expected) {
    return metaError(132000, `body: number of localizable_params (${bodyParams.length}) does not match the expected number of params (${expected})`);
  }

  const buttons: SandboxButton[] = [];
  for (const [index, button] of (def.buttons ?? []).entries()) {
    const given = components.find((c) => c.type.toLowerCase() === "button" && Number(c.index) === index);
    if (button.type === "url" && button.hasParameter) {
      const param = given?.parameters?.[0];
      if (!param) return metaError(131008, `Button at index ${index} of type Url requires a parameter`);
      buttons.push({ title: button.text, copy: paramText(param) });
    } else {
      buttons.push({ title: button.text });
    }
  }

  const values = bodyParams.map(paramText);
  const text = def.body.replace(/\{\{\s*(\d+)\s*\}\}/g, (_, n: string) => values[Number(n) - 1] ?? "");
  return { def, text: def.footer ? `${text}\n${def.footer}` : text, buttons };
}
