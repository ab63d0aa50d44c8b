import { matches, step, startState, type EngineState } from "../../src/flows/engine";
import type { FlowDefinition } from "../../src/flows/schema";
import { ctx, flow, result, say, start, steps, tap, texts } from "./helpers";

/** A branch on one condition: "yes" when it holds, "no" otherwise. */
function branchOn(when: Record<string, unknown>): FlowDefinition {
  return steps(
    { id: "b", type: "branch", cases: [{ when, next: "yes" }], default: "no" },
    { id: "yes", type: "end", text: "yes" },
    { id: "no", type: "end", text: "no" },
  );
}
const verdict = (when: Record<string, unknown>, vars: Record<string, unknown> = {}, c = ctx()) => texts(start(branchOn(when), c, vars))[0];

describe("branch: equals", () => {
  it("compares as strings (numbers and booleans included)", () => {
    expect(verdict({ var: "plan", equals: "pro" }, { plan: "pro" })).toBe("yes");
    expect(verdict({ var: "plan", equals: "pro" }, { plan: "Pro" })).toBe("no");
    expect(verdict({ var: "n", equals: 5 }, { n: "5" })).toBe("yes");
    expect(verdict({ var: "n", equals: 5 }, { n: 5 })).toBe("yes");
    expect(verdict({ var: "ok", equals: true }, { ok: true })).toBe("yes");
    expect(verdict({ var: "ok", equals: false }, { ok: true })).toBe("no");
    expect(verdict({ var: "missing", equals: "x" })).toBe("no");
  });
  it("reads nested paths and contact.*", () => {
    expect(verdict({ var: "api.status", equals: "active" }, { api: { status: "active" } })).toBe("yes");
    expect(verdict({ var: "contact.name", equals: "Ada" })).toBe("yes");
    expect(verdict({ var: "contact.phone", equals: "+14155550123" })).toBe("yes");
  });
});

describe("branch: in", () => {
  it("matches any listed value, as strings", () => {
    expect(verdict({ var: "c", in: ["es", "pt"] }, { c: "pt" })).toBe("yes");
    expect(verdict({ var: "c", in: ["es", "pt"] }, { c: "en" })).toBe("no");
    expect(verdict({ var: "n", in: [1, 2] }, { n: "2" })).toBe("yes");
    expect(verdict({ var: "n", in: [1, 2] })).toBe("no");
  });
});

describe("branch: matches", () => {
  it("tests a case-insensitive regular expression", () => {
    expect(verdict({ var: "email", matches: "@example\\.com$" }, { email: "ada@EXAMPLE.com" })).toBe("yes");
    expect(verdict({ var: "email", matches: "@example\\.com$" }, { email: "ada@example.org" })).toBe("no");
    expect(verdict({ var: "contact.phone", matches: "^\\+1" })).toBe("yes");
  });
  it("a missing variable is tested as the empty string", () => {
    expect(verdict({ var: "nothing", matches: "^$" })).toBe("yes");
  });
  it("an invalid regular expression is refused by the schema, and never matches if one slips through", () => {
    expect(() => verdict({ var: "x", matches: "(" }, { x: "(" })).toThrow(/not a valid regular expression/);
    expect(matches({ var: "x", matches: "(" }, { x: "(" })).toBe(false);
  });
});

describe("branch: exists", () => {
  it("exists: true needs a non-empty value", () => {
    expect(verdict({ var: "x", exists: true }, { x: "v" })).toBe("yes");
    expect(verdict({ var: "x", exists: true }, { x: 0 })).toBe("yes");
    expect(verdict({ var: "x", exists: true }, { x: false })).toBe("yes");
    expect(verdict({ var: "x", exists: true }, { x: "" })).toBe("no");
    expect(verdict({ var: "x", exists: true }, { x: null })).toBe("no");
    expect(verdict({ var: "x", exists: true })).toBe("no");
  });
  it("exists: false holds for missing, null and empty", () => {
    expect(verdict({ var: "x", exists: false })).toBe("yes");
    expect(verdict({ var: "x", exists: false }, { x: "" })).toBe("yes");
    expect(verdict({ var: "x", exists: false }, { x: "v" })).toBe("no");
  });
});

describe("branch: gt / lt", () => {
  it("compares numerically (numeric strings included)", () => {
    expect(verdict({ var: "n", gt: 10 }, { n: 11 })).toBe("yes");
    expect(verdict({ var: "n", gt: 10 }, { n: "11" })).toBe("yes");
    expect(verdict({ var: "n", gt: 10 }, { n: 10 })).toBe("no");
    expect(verdict({ var: "n", lt: 10 }, { n: "9.5" })).toBe("yes");
    expect(verdict({ var: "n", lt: 10 }, { n: 10 })).toBe("no");
    expect(verdict({ var: "n", gt: 1, lt: 5 }, { n: 3 })).toBe("yes");
    expect(verdict({ var: "n", gt: 1, lt: 5 }, { n: 7 })).toBe("no");
  });
  it("a missing or non-numeric value does not compare", () => {
    expect(verdict({ var: "n", gt: 0 })).toBe("no");
    expect(verdict({ var: "n", lt: 100 })).toBe("no");
    expect(verdict({ var: "n", gt: 0 }, { n: "abc" })).toBe("no");
    expect(verdict({ var: "n", lt: 100 }, { n: "abc" })).toBe("no");
  });
});

describe("branch: cases and default", () => {
  const def = steps(
    {
      id: "b",
      type: "branch",
      cases: [
        { when: { var: "score", gt: 90 }, next: "a" },
        { when: { var: "score", gt: 50 }, next: "b2" },
        { when: { var: "score", exists: true, equals: "0" }, next: "zero" },
      ],
      default: "other",
    },
    { id: "a", type: "end", text: "A" },
    { id: "b2", type: "end", text: "B" },
    { id: "zero", type: "end", text: "zero" },
    { id: "other", type: "end", text: "other" },
  );
  it("the first matching case wins, conditions of one case all hold, else the default", () => {
    expect(texts(start(def, ctx(), { score: 95 }))).toEqual(["A"]);
    expect(texts(start(def, ctx(), { score: 60 }))).toEqual(["B"]);
    expect(texts(start(def, ctx(), { score: 0 }))).toEqual(["zero"]);
    expect(texts(start(def, ctx(), { score: 10 }))).toEqual(["other"]);
    expect(texts(start(def))).toEqual(["other"]);
  });
  it("matches() ANDs every condition of a case", () => {
    expect(matches({ var: "x", equals: "a", in: ["a", "b"], matches: "^a$", exists: true }, { x: "a" })).toBe(true);
    expect(matches({ var: "x", equals: "a", in: ["b"] }, { x: "a" })).toBe(false);
    expect(matches({ var: "x" }, {})).toBe(true);
  });
});

describe("set", () => {
  it("sets values with interpolation, in order, keeping non-string types", () => {
    const def = flow({
      variables: { first: "Ada" },
      steps: [
        { id: "s", type: "set", values: { full: "{{first}} Lovelace", greet: "Hi {{full}} / {{contact.name}}", n: 3, on: true, cleared: null }, next: "e" },
        { id: "e", type: "end", text: "{{greet}}" },
      ],
    });
    const out = start(def);
    expect(out.state.vars).toMatchObject({ first: "Ada", full: "Ada Lovelace", greet: "Hi Ada Lovelace / Ada", n: 3, on: true, cleared: null });
    expect(texts(out)).toEqual(["Hi Ada Lovelace / Ada"]);
  });
  it("overwrites an existing variable and does not add contact to the state", () => {
    const def = steps({ id: "s", type: "set", values: { count: "{{count}}1" } });
    const out = start(def, ctx(), { count: "1" });
    expect(out.state.vars).toEqual({ count: "11" });
    expect(out.done).toBe(true);
  });
});

describe("goto", () => {
  it("jumps to a step", () => {
    const def = steps({ id: "g", type: "goto", step: "far" }, { id: "skipped", type: "end", text: "never" }, { id: "far", type: "end", text: "far" });
    expect(texts(start(def))).toEqual(["far"]);
  });
  it("to another flow: a start_flow effect, and this flow ends", () => {
    const def = steps({ id: "hi", type: "send", text: "switching", next: "g" }, { id: "g", type: "goto", flow: "billing" });
    const out = start(def);
    expect(out.effects).toEqual([expect.objectContaining({ type: "send" }), { type: "start_flow", flow: "billing" }]);
    expect(out.done).toBe(true);
    expect(out.state.step).toBeNull();
  });
});

describe("end", () => {
  it("sends its text (interpolated) and ends", () => {
    const def = steps({ id: "e", type: "end", text: { en_US: "Bye {{contact.name}}", es: "Adiós {{contact.name}}" } });
    const out = start(def, ctx({ locale: "es" }));
    expect(texts(out)).toEqual(["Adiós Ada"]);
    expect(out.done).toBe(true);
    expect(out.state).toMatchObject({ step: null, wait: null });
  });
  it("without text ends quietly", () => {
    const out = start(steps({ id: "e", type: "end" }));
    expect(out.effects).toEqual([]);
    expect(out.done).toBe(true);
  });
  it("a message after the end does nothing", () => {
    const def = steps({ id: "e", type: "end", text: "bye" });
    const out = say(def, start(def).state, "hello?");
    expect(out.effects).toEqual([]);
    expect(out.done).toBe(true);
  });
});

describe("handoff", () => {
  const def = steps({ id: "h", type: "handoff", text: "A person will reply, {{contact.name}}", reason: "billing question", next: "never" }, { id: "never", type: "end", text: "never" });
  it("sends its text, emits a handoff effect and waits", () => {
    const out = start(def);
    expect(out.effects).toEqual([
      { type: "send", step: "h", content: { type: "text", text: { body: "A person will reply, Ada", preview_url: false } } },
      { type: "handoff", reason: "billing question" },
    ]);
    expect(out.done).toBe(false);
    expect(out.state).toMatchObject({ step: "h", wait: { kind: "handoff" } });
  });
  it("later messages, replies and stray results produce nothing and keep waiting", () => {
    let s = start(def).state;
    for (const out of [say(def, s, "hello?"), tap(def, s, "x"), say(def, s, "never")]) {
      expect(out.effects).toEqual([]);
      expect(out.done).toBe(false);
      expect(out.state).toEqual(s);
      s = out.state;
    }
  });
  it("without text only the handoff effect", () => {
    expect(start(steps({ id: "h", type: "handoff" })).effects).toEqual([{ type: "handoff", reason: undefined }]);
  });
});

describe("loop guard", () => {
  it("a goto cycle stops (done) instead of hanging", () => {
    const def = steps({ id: "a", type: "goto", step: "b" }, { id: "b", type: "goto", step: "a" });
    const out = start(def);
    expect(out.done).toBe(true);
    expect(out.state).toMatchObject({ step: null, wait: null });
    expect(out.effects).toEqual([]);
  });
  it("a cycle through set and branch steps stops too", () => {
    const def = steps(
      { id: "s", type: "set", values: { n: "x{{n}}" }, next: "b" },
      { id: "b", type: "branch", cases: [{ when: { var: "n", exists: true }, next: "s" }], default: "s" },
    );
    const out = start(def);
    expect(out.done).toBe(true);
    expect(String(out.state.vars.n).length).toBeLessThan(200);
  });
  it("a self-goto stops", () => {
    expect(start(steps({ id: "a", type: "goto", step: "a" })).done).toBe(true);
  });
  it("a cycle through a send step bounds the messages sent", () => {
    const def = steps({ id: "a", type: "send", text: "spam", next: "b" }, { id: "b", type: "goto", step: "a" });
    const out = start(def);
    expect(out.done).toBe(true);
    expect(out.effects.length).toBeLessThanOrEqual(100);
  });
});

describe("state lifecycle", () => {
  it("startState takes the flow's variables, overridden by the given ones", () => {
    const def = flow({ variables: { a: 1, b: "x" }, steps: [{ id: "e", type: "end" }] });
    expect(startState(def, 7, { b: "y", c: true })).toEqual({ flow: "test-flow", version: 7, step: null, vars: { a: 1, b: "y", c: true }, wait: null });
  });
  it("start input vars are merged into the state", () => {
    const def = flow({ variables: { a: 1 }, steps: [{ id: "q", type: "ask", text: "?", save: "z", input: { type: "text" } }] });
    const out = step(def, startState(def, 1), { kind: "start", vars: { b: 2 } }, ctx());
    expect(out.state.vars).toEqual({ a: 1, b: 2 });
  });
  it("a state pointing at a step that no longer exists ends the flow", () => {
    const def = steps({ id: "e", type: "end" });
    const out = say(def, { flow: "test-flow", version: 1, step: "gone", vars: {}, wait: { kind: "reply" } }, "hi");
    expect(out.done).toBe(true);
    expect(out.effects).toEqual([]);
  });
  it("a message while an effect's result is awaited is ignored", () => {
    const def = steps({ id: "o", type: "otp_request", next: "e" }, { id: "e", type: "end", text: "sent" });
    const s = start(def).state;
    const out = say(def, s, "hello?");
    expect(out.effects).toEqual([]);
    expect(out.state).toEqual(s);
    expect(out.done).toBe(false);
  });
  it("a result of the wrong kind ends the flow", () => {
    const def = steps({ id: "o", type: "otp_request", next: "e" }, { id: "e", type: "end", text: "sent" });
    const out = result(def, start(def).state, { type: "http", ok: true, data: {} });
    expect(out.done).toBe(true);
    expect(out.effects).toEqual([]);
  });
});

describe("state purity", () => {
  function deepFreeze<T>(o: T): T {
    if (o && typeof o === "object") {
      Object.values(o).forEach(deepFreeze);
      Object.freeze(o);
    }
    return o;
  }
  const def = steps(
    { id: "q", type: "ask", text: "Name?", save: "name", input: { type: "text" }, next: "s" },
    { id: "s", type: "set", values: { greeting: "Hi {{name}}" }, next: "m" },
    { id: "m", type: "send", text: "{{greeting}}", buttons: [{ id: "a", title: "A", next: "o" }] },
    { id: "o", type: "otp_request", next: "e" },
    { id: "e", type: "end" },
  );

  it("step does not mutate the state passed in, at any stage", () => {
    const initial = startState(def, 1, { nested: { deep: [1, 2] } });
    const inputs: Array<(s: EngineState) => ReturnType<typeof step>> = [
      (s) => step(def, s, { kind: "start", vars: { extra: 1 } }, ctx()),
      (s) => say(def, s, ""), // invalid: retries go down
      (s) => say(def, s, "Ada"),
      (s) => tap(def, s, "a"),
      (s) => result(def, s, { type: "otp_request", ok: true }),
    ];
    let s = initial;
    for (const run of inputs) {
      const snapshot = JSON.stringify(s);
      deepFreeze(s); // a write would throw in strict mode
      const out = run(s);
      expect(JSON.stringify(s)).toBe(snapshot);
      expect(out.state).not.toBe(s);
      expect(out.state.vars).not.toBe(s.vars);
      s = out.state;
    }
    expect(s.step).toBeNull();
  });

  it("the start input's vars object is not mutated or aliased", () => {
    const vars = { nested: { n: 1 } };
    const out = step(def, startState(def, 1), { kind: "start", vars }, ctx());
    expect(vars).toEqual({ nested: { n: 1 } });
    expect(out.state.vars.nested).toEqual({ n: 1 });
  });

  it("the same input on the same state gives the same output (deterministic)", () => {
    const s = start(def).state;
    expect(say(def, s, "Ada")).toEqual(say(def, s, "Ada"));
  });
});
