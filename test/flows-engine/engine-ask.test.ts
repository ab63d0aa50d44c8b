import { REDACTED } from "../../src/flows/engine";
import type { FlowDefinition } from "../../src/flows/schema";
import { contents, ctx, say, start, steps, tap, texts } from "./helpers";

/** An ask step followed by an end step that echoes the saved answer. */
function askFlow(ask: Record<string, unknown>): FlowDefinition {
  return steps({ id: "q", type: "ask", text: "Question?", save: "answer", next: "done", ...ask }, { id: "done", type: "end", text: "got [{{answer}}]" });
}
function answer(def: FlowDefinition, text: string | null, replyId: string | null = null, c = ctx()) {
  return say(def, start(def, c).state, text, c, replyId);
}

describe("ask: asking", () => {
  it("sends the question as text and waits for input with the retries left", () => {
    const def = askFlow({ input: { type: "text" }, retries: 3 });
    const out = start(def);
    expect(texts(out)).toEqual(["Question?"]);
    expect(out.done).toBe(false);
    expect(out.state.step).toBe("q");
    expect(out.state.wait).toEqual({ kind: "input", retries: 3 });
  });

  it("up to 3 choices are asked with reply buttons (titles cut to 20)", () => {
    const def = askFlow({ input: { type: "choice", choices: [{ id: "a", title: "Alpha is a long choice title" }, { id: "b", title: { en_US: "Beta", es: "Beta ES" } }] } });
    expect(contents(start(def, ctx({ locale: "es" })))).toEqual([
      {
        type: "interactive",
        interactive: {
          type: "button",
          body: { text: "Question?" },
          action: { buttons: [{ type: "reply", reply: { id: "a", title: "Alpha is a long choi" } }, { type: "reply", reply: { id: "b", title: "Beta ES" } }] },
        },
      },
    ]);
  });

  it("more than 3 choices are asked with a list whose button is the localized 'Choose'", () => {
    const choices = [1, 2, 3, 4].map((n) => ({ id: `c${n}`, title: `Choice number ${n} with a long title` }));
    const def = askFlow({ input: { type: "choice", choices } });
    const c = contents(start(def, ctx({ locale: "pt_BR" })))[0]!;
    expect(c.interactive.type).toBe("list");
    expect(c.interactive.action.button).toBe("Escolher");
    expect(c.interactive.action.sections).toEqual([{ rows: choices.map((ch) => ({ id: ch.id, title: ch.title.slice(0, 24) })) }]);
    expect(contents(start(def))[0]!.interactive.action.button).toBe("Choose");
  });
});

describe("ask: choice input", () => {
  const def = steps(
    {
      id: "q",
      type: "ask",
      text: "Which plan?",
      save: "plan",
      input: {
        type: "choice",
        choices: [
          { id: "basic", title: { en_US: "Basic", es: "Básico" }, value: "B" },
          { id: "pro", title: "Pro", next: "pro_step" },
          { id: "team", title: "Team" },
        ],
      },
      next: "done",
    },
    { id: "pro_step", type: "end", text: "pro branch {{plan}}" },
    { id: "done", type: "end", text: "plan={{plan}}" },
  );

  it("accepts a reply id; the choice's value is saved when given", () => {
    const out = answer(def, null, "basic");
    expect(out.state.vars.plan).toBe("B");
    expect(texts(out)).toEqual(["plan=B"]);
    expect(out.done).toBe(true);
  });

  it("without a value the id is saved; a choice's next wins over the step's", () => {
    const out = answer(def, null, "pro");
    expect(texts(out)).toEqual(["pro branch pro"]);
  });

  it("accepts a typed title (case/whitespace-insensitive, localized) and a typed id", () => {
    expect(texts(answer(def, "  TEAM "))).toEqual(["plan=team"]);
    expect(texts(answer(def, "básico", null, ctx({ locale: "es" })))).toEqual(["plan=B"]);
    expect(texts(answer(def, "PRO"))).toEqual(["pro branch pro"]);
  });

  it("accepts the choice's number (1-based)", () => {
    expect(texts(answer(def, "1"))).toEqual(["plan=B"]);
    expect(texts(answer(def, " 3 "))).toEqual(["plan=team"]);
    expect(texts(answer(def, "2"))).toEqual(["pro branch pro"]);
  });

  it("refuses an out-of-range number, an unknown title and an unknown reply id", () => {
    for (const [text, id] of [["0", null], ["4", null], ["enterprise", null], [null, "nope"]] as const) {
      const out = answer(def, text, id);
      expect(out.done).toBe(false);
      expect(out.state.wait).toEqual({ kind: "input", retries: 1 });
      expect(out.state.vars.plan).toBeUndefined();
    }
  });
});

describe("ask: digits input", () => {
  const def = askFlow({ input: { type: "digits", min: 4, max: 6 } });
  it("accepts digits within min/max, dropping spaces and dashes", () => {
    expect(answer(def, "1234").state.vars.answer).toBe("1234");
    expect(answer(def, " 12-34 56 ").state.vars.answer).toBe("123456");
  });
  it("refuses too short, too long, and non-digits", () => {
    for (const t of ["123", "1234567", "12a4", "", null, "１２３４"]) expect(answer(def, t).state.wait).toEqual({ kind: "input", retries: 1 });
  });
});

describe("ask: email input", () => {
  const def = askFlow({ input: { type: "email" } });
  it("accepts an address and saves it lowercased and trimmed", () => {
    const out = answer(def, "  Ada.Lovelace@Example.COM ");
    expect(out.state.vars.answer).toBe("ada.lovelace@example.com");
    expect(texts(out)).toEqual(["got [ada.lovelace@example.com]"]);
  });
  it("refuses malformed addresses", () => {
    for (const t of ["ada", "ada@", "@example.com", "ada@example", "ada@example.c", "a b@example.com", "a@b@example.com", `${"a".repeat(65)}@example.com`]) {
      expect(answer(def, t).state.vars.answer).toBeUndefined();
    }
  });
});

describe("ask: text input", () => {
  it("accepts trimmed text within min/max (defaults 1..1024)", () => {
    const def = askFlow({ input: { type: "text" } });
    expect(answer(def, "  hello  ").state.vars.answer).toBe("hello");
    expect(answer(def, "   ").state.wait).toEqual({ kind: "input", retries: 1 });
    expect(answer(def, "x".repeat(1024)).done).toBe(true);
    expect(answer(def, "x".repeat(1025)).done).toBe(false);
  });
  it("enforces min and max", () => {
    const def = askFlow({ input: { type: "text", min: 3, max: 5 } });
    expect(answer(def, "ab").done).toBe(false);
    expect(answer(def, "abc").state.vars.answer).toBe("abc");
    expect(answer(def, "abcde").state.vars.answer).toBe("abcde");
    expect(answer(def, "abcdef").done).toBe(false);
  });
  it("min 0 accepts an empty answer (and a message without text)", () => {
    const def = askFlow({ input: { type: "text", min: 0 } });
    expect(answer(def, null).state.vars.answer).toBe("");
  });
  it("enforces the pattern", () => {
    const def = askFlow({ input: { type: "text", pattern: "^[A-Z]{2}-\\d{3}$" } });
    expect(answer(def, "AB-123").state.vars.answer).toBe("AB-123");
    expect(answer(def, "ab-123").done).toBe(false);
    expect(answer(def, "AB-1234").done).toBe(false);
  });
});

describe("ask: invalid answers and retries", () => {
  const def = steps(
    { id: "q", type: "ask", text: "Age?", save: "age", input: { type: "digits", max: 3 }, retries: 2, invalidText: { en_US: "Digits only, {{contact.name}}.", es: "Solo dígitos." }, next: "ok" },
    { id: "ok", type: "end", text: "age {{age}}" },
  );

  it("re-asks with invalidText then the question, counting retries down", () => {
    let out = start(def);
    out = say(def, out.state, "old");
    expect(texts(out)).toEqual(["Digits only, Ada.", "Age?"]);
    expect(out.state.wait).toEqual({ kind: "input", retries: 1 });
    out = say(def, out.state, "very old");
    expect(out.state.wait).toEqual({ kind: "input", retries: 0 });
    out = say(def, out.state, "42");
    expect(texts(out)).toEqual(["age 42"]);
    expect(out.done).toBe(true);
  });

  it("invalidText is localized", () => {
    const es = ctx({ locale: "es" });
    expect(texts(say(def, start(def, es).state, "x", es))).toEqual(["Solo dígitos.", "Age?"]);
  });

  it("without invalidText the default apology is used, localized", () => {
    const d = steps({ id: "q", type: "ask", text: "Age?", save: "age", input: { type: "digits" } });
    expect(texts(say(d, start(d).state, "x"))).toEqual(["Sorry, that doesn't look right.", "Age?"]);
    const pt = ctx({ locale: "pt_BR" });
    expect(texts(say(d, start(d, pt).state, "x", pt))).toEqual(["Desculpe, isso não parece certo.", "Age?"]);
  });

  it("after the retries are used up the flow ends with the default goodbye", () => {
    let out = start(def);
    out = say(def, out.state, "a");
    out = say(def, out.state, "b");
    out = say(def, out.state, "c");
    expect(texts(out)).toEqual(["Let's stop here. Write again whenever you like."]);
    expect(out.done).toBe(true);
    expect(out.state.step).toBeNull();
    expect(out.state.wait).toBeNull();
  });

  it("retries: 0 gives up at the first invalid answer", () => {
    const d = steps({ id: "q", type: "ask", text: "Age?", save: "age", input: { type: "digits" }, retries: 0 });
    const out = say(d, start(d).state, "x");
    expect(out.done).toBe(true);
    expect(texts(out)).toEqual(["Let's stop here. Write again whenever you like."]);
  });

  it("after the retries are used up, onInvalid is followed instead", () => {
    const d = steps(
      { id: "q", type: "ask", text: "Age?", save: "age", input: { type: "digits" }, retries: 1, onInvalid: "human", next: "ok" },
      { id: "ok", type: "end", text: "ok" },
      { id: "human", type: "handoff", text: "Passing you to a person" },
    );
    let out = say(d, start(d).state, "x");
    expect(out.state.wait).toEqual({ kind: "input", retries: 0 });
    out = say(d, out.state, "y");
    expect(texts(out)).toEqual(["Passing you to a person"]);
    expect(out.effects).toContainEqual({ type: "handoff", reason: undefined });
    expect(out.state.step).toBe("human");
    expect(out.done).toBe(false);
  });
});

describe("ask: secret answers", () => {
  const def = steps(
    { id: "q", type: "ask", text: "Your passphrase?", save: "phrase", secret: true, input: { type: "text", min: 4 }, next: "echo" },
    { id: "echo", type: "end", text: "saved: {{phrase}}" },
  );

  it("stores [redacted] in vars and flags the inbound message as secret", () => {
    const out = say(def, start(def).state, "open sesame");
    expect(out.secretInput).toBe(true);
    expect(out.state.vars.phrase).toBe(REDACTED);
    expect(texts(out)).toEqual(["saved: [redacted]"]);
    expect(JSON.stringify(out)).not.toContain("open sesame");
  });

  it("an invalid secret answer is flagged secret as well", () => {
    const out = say(def, start(def).state, "abc");
    expect(out.secretInput).toBe(true);
    expect(out.state.wait).toEqual({ kind: "input", retries: 1 });
    expect(JSON.stringify(out.state)).not.toContain("abc");
  });

  it("a non-secret answer is not flagged", () => {
    const d = askFlow({ input: { type: "text" } });
    expect(answer(d, "hello").secretInput).toBe(false);
  });
});

describe("ask: input while waiting elsewhere", () => {
  it("a reply tap for an ask choice by id works even when the text is empty", () => {
    const def = askFlow({ input: { type: "choice", choices: [{ id: "y", title: "Yes" }] } });
    expect(tap(def, start(def).state, "y").state.vars.answer).toBe("y");
  });
});
