import { regexTest } from "./regex";
import type { FlowDefinition, Trigger } from "./schema";

export interface LiveFlow {
  name: string;
  version: number;
  definition: FlowDefinition;
}

export interface TriggerInput {
  text: string | null;
  /** a button or list reply id (interactive reply, or a template quick-reply payload) */
  replyId: string | null;
  isNewContact: boolean;
}

function norm(s: string): string {
  return s.trim().replace(/\s+/g, " ").toLowerCase().normalize("NFC");
}

function keywordHit(t: Extract<Trigger, { type: "keyword" }>, text: string): boolean {
  const lists = Array.isArray(t.keywords) ? [t.keywords] : Object.values(t.keywords);
  const said = norm(text);
  return lists.some((list) =>
    list.some((k) => {
      const kw = norm(k);
      return t.match === "contains" ? said.includes(kw) : t.match === "starts_with" ? said.startsWith(kw) : said === kw;
    }),
  );
}

/**
 * Which live flow a message starts, if any. Precedence: a button/list reply id, then keywords, then patterns,
 * then "first message of a new contact"; within one kind, the flow listed first (by name) wins.
 */
export function matchTrigger(flows: LiveFlow[], input: TriggerInput): LiveFlow | null {
  const ordered = [...flows].sort((a, b) => a.name.localeCompare(b.name));
  const find = (pred: (t: Trigger) => boolean) => ordered.find((f) => f.definition.triggers.some(pred)) ?? null;
  if (input.replyId) {
    const hit = find((t) => t.type === "button" && t.ids.includes(input.replyId!));
    if (hit) return hit;
  }
  if (input.text) {
    const text = input.text;
    const kw = find((t) => t.type === "keyword" && keywordHit(t, text));
    if (kw) return kw;
    // tenants' patterns run on RE2 (linear time, bounded input): src/flows/regex.ts
    const pat = find((t) => t.type === "pattern" && regexTest(t.pattern, text, { ignoreCase: true }));
    if (pat) return pat;
  }
  if (input.isNewContact) return find((t) => t.type === "new_contact");
  return null;
}
