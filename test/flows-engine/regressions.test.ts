import { validateFlow } from "../../src/flows/schema";
import { matchTrigger } from "../../src/flows/triggers";
import { result, say, start, steps, tap, texts } from "./helpers";

/** Bugs found by review, each pinned by the case that showed it. */
describe("regressions", () => {
  it("refuses an ask text pattern that is not a regular expression", () => {
    const v = validateFlow({ name: "x", steps: [{ id: "q", type: "ask", text: "Code?", save: "c", input: { type: "text", pattern: "([A-Z]" } }] });
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.errors.map((e) => e.path)).toContain("steps[0].input.pattern");
  });

  it("reports cross-reference mistakes together with every other mistake", () => {
    const v = validateFlow({ name: "Bad Name", steps: [{ id: "a", type: "send", text: "t", next: "ghost" }] });
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.errors.map((e) => e.path).sort()).toEqual(["name", "steps[0].next"]);
  });

  it("does not take an empty value for 0 in gt/lt", () => {
    const def = steps(
      { id: "b", type: "branch", cases: [{ when: { var: "age", lt: 18 }, next: "minor" }], default: "other" },
      { id: "minor", type: "end", text: "minor" },
      { id: "other", type: "end", text: "other" },
    );
    for (const age of [null, "", "  "]) expect(texts(start(def, undefined, { age }))).toEqual(["other"]);
    expect(texts(start(def, undefined, { age: "12" }))).toEqual(["minor"]);
  });

  it("stores any text sent while a code is awaited as secret", () => {
    const def = steps({ id: "v", type: "otp_verify", text: "Code?", approved: "ok" }, { id: "ok", type: "end" });
    expect(say(def, start(def).state, "my code is 482915").secretInput).toBe(true);
  });

  it("refuses min greater than max", () => {
    const v = validateFlow({ name: "x", steps: [{ id: "q", type: "ask", text: "?", save: "c", input: { type: "digits", min: 8, max: 4 } }] });
    expect(v.ok).toBe(false);
  });

  it("runs a long flow without a loop to its end", () => {
    const s: Record<string, unknown>[] = Array.from({ length: 120 }, (_, i) => ({ id: `s${i}`, type: "set", values: { n: i }, next: i < 119 ? `s${i + 1}` : "e" }));
    s.push({ id: "e", type: "end", text: "reached the end" });
    expect(texts(start(steps(...s)))).toEqual(["reached the end"]);
  });

  it("keeps a button choice usable when the step id has - or .", () => {
    const def = steps({ id: "menu-1", type: "send", text: "Pick", buttons: [{ id: "a", title: "A", next: "e" }] }, { id: "e", type: "end", text: "chose {{menu_1_choice}}" });
    expect(texts(tap(def, start(def).state, "a"))).toEqual(["chose a"]);
  });

  it("matches keywords whatever the spacing inside", () => {
    const def = steps({ id: "a", type: "end", text: "x" });
    const flows = [{ name: "f", version: 1, definition: { ...def, triggers: [{ type: "keyword" as const, keywords: ["hola ping"], match: "exact" as const }] } }];
    expect(matchTrigger(flows, { text: "hola   ping", replyId: null, isNewContact: false })?.name).toBe("f");
  });

  it("says a code is wrong without a dangling count when none is known", () => {
    const def = steps({ id: "v", type: "otp_verify", text: "Code?", approved: "ok" }, { id: "ok", type: "end" });
    const waiting = say(def, start(def).state, "123456").state;
    expect(texts(result(def, waiting, { type: "otp_check", status: "wrong" }))).toEqual(["That code is not right."]);
  });
});
