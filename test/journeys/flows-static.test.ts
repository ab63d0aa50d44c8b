import { loadBuiltinFlows } from "../../src/flows/builtin";
import { GLOBAL_COMMANDS } from "../../src/flows/flow.handler";
import type { FlowDefinition, LocalizedText } from "../../src/flows/schema";
import { NEW_CODE_BUTTON_ID, NOT_ME_BUTTON_ID, NOT_ME_KEYWORDS } from "../../src/otp/texts";

/** The shipped journeys, checked without a database: valid, in three languages, within Meta's limits, wired to the menu. */
const loaded = loadBuiltinFlows();
const flows = new Map(loaded.files.map((f) => [f.flow.name, f.flow]));
const LOCALES = ["en_US", "es", "pt_BR"];

/** Every text of a flow with where it is and Meta's length limit for it. */
function texts(def: FlowDefinition): { where: string; text: LocalizedText; max: number }[] {
  const out: { where: string; text: LocalizedText; max: number }[] = [];
  for (const s of def.steps as Record<string, any>[]) {
    const at = `${def.name}.${s.id}`;
    for (const k of ["text", "confirmText", "mismatchText", "weakText", "invalidText"]) if (s[k]) out.push({ where: `${at}.${k}`, text: s[k], max: s.buttons ? 1024 : 4096 });
    for (const b of s.buttons ?? []) out.push({ where: `${at}.button ${b.id}`, text: b.title, max: 20 });
    if (s.list) {
      out.push({ where: `${at}.list.button`, text: s.list.button, max: 20 });
      for (const sec of s.list.sections) {
        if (sec.title) out.push({ where: `${at}.section`, text: sec.title, max: 24 });
        for (const r of sec.rows) {
          out.push({ where: `${at}.row ${r.id}`, text: r.title, max: 24 });
          if (r.description) out.push({ where: `${at}.row ${r.id}.description`, text: r.description, max: 72 });
        }
      }
    }
    for (const c of s.input?.choices ?? []) out.push({ where: `${at}.choice ${c.id}`, text: c.title, max: 20 });
  }
  return out;
}

it("every shipped flow is valid", () => {
  expect(loaded.errors).toEqual([]);
  expect([...flows.keys()].sort()).toEqual(["change-number", "help", "help-codes", "login-notice", "menu", "pin", "recover", "reverify", "verify"]);
});

it("every text is written in English, Spanish and Brazilian Portuguese, within Meta's limits (placeholders filled with 12 characters)", () => {
  const problems: string[] = [];
  for (const def of flows.values()) {
    for (const t of texts(def)) {
      if (typeof t.text === "string") {
        problems.push(`${t.where}: one text for every language`);
        continue;
      }
      for (const l of LOCALES) {
        const v = t.text[l];
        if (!v) problems.push(`${t.where}: no ${l}`);
        else if (v.replace(/\{\{[^}]+\}\}/g, "x".repeat(12)).length > t.max) problems.push(`${t.where}: ${l} longer than ${t.max}`);
      }
    }
  }
  expect(problems).toEqual([]);
});

it("the menu's rows start the journeys: each row id is a journey's button trigger", () => {
  const menu = flows.get("menu")!;
  const rows = (menu.steps[0] as { list: { sections: { rows: { id: string }[] }[] } }).list.sections.flatMap((s) => s.rows.map((r) => r.id));
  const buttonTriggers = new Map<string, string>();
  for (const def of flows.values()) for (const t of def.triggers) if (t.type === "button") for (const id of t.ids) buttonTriggers.set(id, def.name);
  expect(Object.fromEntries(rows.map((id) => [id, buttonTriggers.get(id)]))).toEqual({
    journey_verify: "verify",
    journey_help_codes: "help-codes",
    journey_change_number: "change-number",
    journey_recover: "recover",
    journey_pin: "pin",
    journey_help: "help",
  });
  expect(flows.get("login-notice")!.triggers).toEqual([{ type: "api" }]);
  expect(flows.get("reverify")!.triggers.map((t) => t.type)).toContain("api");
});

it("no keyword, button id or title collides with the code-reporting words or the global commands", () => {
  const reserved = new Set([...NOT_ME_KEYWORDS, ...Object.values(GLOBAL_COMMANDS).flat()].map((w) => w.toLowerCase()));
  const reservedIds = new Set([NOT_ME_BUTTON_ID, NEW_CODE_BUTTON_ID, "DID_NOT_REQUEST_CODE"]);
  const problems: string[] = [];
  const keywordOwner = new Map<string, string>();
  for (const def of flows.values()) {
    for (const t of def.triggers) {
      if (t.type !== "keyword") continue;
      const lists = Array.isArray(t.keywords) ? [t.keywords] : Object.values(t.keywords);
      for (const k of lists.flat()) {
        const key = k.toLowerCase();
        if (reserved.has(key) && !(def.name === "menu" && (GLOBAL_COMMANDS.menu as readonly string[]).includes(key)) && !(def.name === "help" && (GLOBAL_COMMANDS.help as readonly string[]).includes(key))) problems.push(`${def.name}: keyword '${k}' is reserved`);
        const other = keywordOwner.get(key);
        if (other && other !== def.name) problems.push(`keyword '${k}' in ${other} and ${def.name}`);
        keywordOwner.set(key, def.name);
      }
    }
    for (const s of def.steps as Record<string, any>[]) {
      for (const b of [...(s.buttons ?? []), ...(s.list?.sections.flatMap((x: { rows: unknown[] }) => x.rows) ?? [])]) {
        if (reservedIds.has(b.id)) problems.push(`${def.name}.${s.id}: reserved id ${b.id}`);
        for (const title of Object.values(b.title as Record<string, string>)) if (reserved.has(title.toLowerCase())) problems.push(`${def.name}.${s.id}: title '${title}' is a reserved word`);
      }
    }
  }
  expect(problems).toEqual([]);
});
