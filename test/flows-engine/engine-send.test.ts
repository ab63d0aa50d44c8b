import { localize, interpolate, render } from "../../src/flows/text";
import { contents, ctx, flow, result, say, start, steps, tap, textContent, texts } from "./helpers";

describe("text: localize / interpolate", () => {
  const t = { en_US: "Hello", es: "Hola", pt_BR: "Olá" };
  it("picks the exact locale, then the same language, then English, then the first given", () => {
    expect(localize(t, "en_US")).toBe("Hello");
    expect(localize(t, "es")).toBe("Hola");
    expect(localize(t, "pt_BR")).toBe("Olá");
    expect(localize(t, "es_MX")).toBe("Hola");
    expect(localize(t, "pt_PT")).toBe("Olá");
    expect(localize(t, "fr_FR")).toBe("Hello");
    expect(localize({ es: "Hola", en_GB: "Hello (GB)" }, "de")).toBe("Hello (GB)");
    expect(localize({ es: "Hola", pt_BR: "Olá" }, "de")).toBe("Hola");
    expect(localize("plain", "es")).toBe("plain");
  });
  it("fills placeholders, nested paths and JSON for objects; unknown ones become empty", () => {
    expect(interpolate("Hi {{ name }}, {{contact.name}} / {{api.user.id}} [{{missing}}] [{{nil}}] {{obj}}", {
      name: "Bo",
      contact: { name: "Ada" },
      api: { user: { id: 7 } },
      nil: null,
      obj: { a: 1 },
    })).toBe('Hi Bo, Ada / 7 [] [] {"a":1}');
    expect(interpolate("{{1bad}} {{ }}", { "1bad": "x" })).toBe("{{1bad}} {{ }}");
    expect(render({ en_US: "Hi {{n}}", es: "Hola {{n}}" }, "es", { n: 3 })).toBe("Hola 3");
  });
});

describe("send: text", () => {
  it("sends the text and ends when there is no next", () => {
    const def = steps({ id: "answer", type: "send", text: "pong from a custom flow" });
    const out = start(def);
    expect(out.effects).toEqual([{ type: "send", step: "answer", content: textContent("pong from a custom flow") }]);
    expect(out.done).toBe(true);
    expect(out.secretInput).toBe(false);
    expect(out.state).toMatchObject({ flow: "test-flow", version: 1, step: null, wait: null });
  });

  it("continues at next, in order, without waiting", () => {
    const def = steps({ id: "a", type: "send", text: "one", next: "b" }, { id: "b", type: "send", text: "two", next: "c" }, { id: "c", type: "end", text: "three" });
    const out = start(def);
    expect(texts(out)).toEqual(["one", "two", "three"]);
    expect(out.effects.map((e) => (e as { step: string }).step)).toEqual(["a", "b", "c"]);
    expect(out.done).toBe(true);
  });

  it("starts at `start` when given", () => {
    const def = flow({ start: "b", steps: [{ id: "a", type: "send", text: "A" }, { id: "b", type: "send", text: "B" }] });
    expect(texts(start(def))).toEqual(["B"]);
  });

  it("cuts a text to 4096 characters", () => {
    const def = steps({ id: "b", type: "send", text: "{{long}}" });
    expect(texts(start(def, ctx(), { long: "x".repeat(5000) }))[0]).toHaveLength(4096);
  });
});

describe("send: localized text", () => {
  const def = steps({ id: "a", type: "send", text: { en_US: "Hello", es: "Hola", pt_BR: "Olá" } });
  it.each([
    ["en_US", "Hello"],
    ["es", "Hola"],
    ["es_AR", "Hola"],
    ["pt_BR", "Olá"],
    ["pt", "Olá"],
    ["fr_FR", "Hello"],
  ])("locale %s gets %s", (locale, expected) => {
    expect(texts(start(def, ctx({ locale })))).toEqual([expected]);
  });
});

describe("send: interpolation", () => {
  it("fills {{var}} from variables, start vars and {{contact.*}} from the context", () => {
    const def = flow({
      variables: { plan: "basic", city: "Lima" },
      steps: [{ id: "a", type: "send", text: "Hi {{contact.name}} ({{contact.phone}}), plan {{plan}} in {{city}}, code {{ref}}{{missing}}." }],
    });
    expect(texts(start(def, ctx(), { city: "Quito", ref: 42 }))).toEqual(["Hi Ada (+14155550123), plan basic in Quito, code 42."]);
  });

  it("an unknown contact name interpolates as empty", () => {
    const def = steps({ id: "a", type: "send", text: "Hi {{contact.name}}!" });
    expect(texts(start(def, ctx({ contact: { name: null, phone: null } })))).toEqual(["Hi !"]);
  });

  it("state vars cannot override contact.* (context wins)", () => {
    const def = steps({ id: "a", type: "send", text: "{{contact.name}}" });
    expect(texts(start(def, ctx(), { contact: { name: "Mallory" } }))).toEqual(["Ada"]);
  });
});

describe("send: buttons", () => {
  const def = steps(
    {
      id: "menu",
      type: "send",
      text: "Hi {{contact.name}}, pick one",
      buttons: [
        { id: "yes", title: { en_US: "Yes please, absolutely yes", es: "Sí" }, next: "y" },
        { id: "no", title: "No", next: "n" },
        { id: "later", title: "Later" },
      ],
      next: "after",
    },
    { id: "y", type: "end", text: "chose yes" },
    { id: "n", type: "end", text: "chose no" },
    { id: "after", type: "end", text: "default next" },
  );

  it("renders Meta interactive button JSON with titles cut to 20 characters", () => {
    const out = start(def);
    expect(contents(out)).toEqual([
      {
        type: "interactive",
        interactive: {
          type: "button",
          body: { text: "Hi Ada, pick one" },
          action: {
            buttons: [
              { type: "reply", reply: { id: "yes", title: "Yes please, absolute" } },
              { type: "reply", reply: { id: "no", title: "No" } },
              { type: "reply", reply: { id: "later", title: "Later" } },
            ],
          },
        },
      },
    ]);
    expect(out.effects[0]).toMatchObject({ type: "send", step: "menu" });
  });

  it("localizes button titles", () => {
    const out = start(def, ctx({ locale: "es" }));
    expect(contents(out)[0]!.interactive.action.buttons[0].reply.title).toBe("Sí");
  });

  it("waits for the reply when a button has its own next", () => {
    const out = start(def);
    expect(out.done).toBe(false);
    expect(out.state.step).toBe("menu");
    expect(out.state.wait).toEqual({ kind: "reply" });
  });

  it("routes by button reply id and records the choice", () => {
    const s = start(def).state;
    const out = tap(def, s, "no");
    expect(texts(out)).toEqual(["chose no"]);
    expect(out.done).toBe(true);
    expect(out.state.vars.menu_choice).toBe("no");
  });

  it("routes by a typed title (case and surrounding whitespace ignored, in the contact's locale)", () => {
    const s = start(def).state;
    expect(texts(say(def, s, "  NO "))).toEqual(["chose no"]);
    const es = start(def, ctx({ locale: "es" })).state;
    expect(texts(say(def, es, "sí", ctx({ locale: "es" })))).toEqual(["chose yes"]);
  });

  it("a button without its own next continues at the step's next", () => {
    const s = start(def).state;
    const out = tap(def, s, "later");
    expect(texts(out)).toEqual(["default next"]);
    expect(out.state.vars.menu_choice).toBe("later");
  });

  it("an unknown reply shows the options again and keeps waiting", () => {
    const s = start(def).state;
    const out = say(def, s, "maybe?");
    expect(contents(out)).toEqual(contents(start(def)));
    expect(out.done).toBe(false);
    expect(out.state.wait).toEqual({ kind: "reply" });
    expect(out.state.step).toBe("menu");
    expect(tap(def, s, "unknown-id").state.wait).toEqual({ kind: "reply" });
  });

  it("a send whose buttons have no next does not wait: it continues at once", () => {
    const d = steps(
      { id: "m", type: "send", text: "Info", buttons: [{ id: "a", title: "A" }, { id: "b", title: "B" }], next: "z" },
      { id: "z", type: "end", text: "continued" },
    );
    const out = start(d);
    expect(out.effects).toHaveLength(2);
    expect(contents(out)[0]!.type).toBe("interactive");
    expect(texts(out)).toEqual(["continued"]);
    expect(out.done).toBe(true);
  });
});

describe("send: list", () => {
  const def = steps(
    {
      id: "pick",
      type: "send",
      text: "Choose a branch",
      list: {
        button: "See all the branches we have",
        sections: [
          { title: "North side of the city, long", rows: [{ id: "n1", title: "Northgate", description: "d".repeat(80), next: "north" }, { id: "n2", title: "Uptown" }] },
          { rows: [{ id: "s1", title: "A very long row title exceeding", next: "south" }] },
        ],
      },
      next: "fallback",
    },
    { id: "north", type: "end", text: "north" },
    { id: "south", type: "end", text: "south" },
    { id: "fallback", type: "end", text: "fallback" },
  );

  it("renders Meta interactive list JSON (button 20, section title 24, row title 24, description 72)", () => {
    expect(contents(start(def))).toEqual([
      {
        type: "interactive",
        interactive: {
          type: "list",
          body: { text: "Choose a branch" },
          action: {
            button: "See all the branches",
            sections: [
              {
                title: "North side of the city, ",
                rows: [
                  { id: "n1", title: "Northgate", description: "d".repeat(72) },
                  { id: "n2", title: "Uptown" },
                ],
              },
              { rows: [{ id: "s1", title: "A very long row title ex" }] },
            ],
          },
        },
      },
    ]);
  });

  it("waits and routes by row id, typed row title, or the step's next", () => {
    const s = start(def).state;
    expect(s.wait).toEqual({ kind: "reply" });
    expect(texts(tap(def, s, "s1"))).toEqual(["south"]);
    expect(texts(say(def, s, "northgate"))).toEqual(["north"]);
    const out = tap(def, s, "n2");
    expect(texts(out)).toEqual(["fallback"]);
    expect(out.state.vars.pick_choice).toBe("n2");
  });
});

describe("send: template", () => {
  it("renders template JSON with interpolated body parameters", () => {
    const def = flow({
      variables: { amount: "12.50" },
      steps: [{ id: "t", type: "send", template: { name: "order_ready", language: "en_US", parameters: ["{{contact.name}}", "{{amount}}", "fixed"] } }],
    });
    expect(contents(start(def))).toEqual([
      {
        type: "template",
        template: {
          name: "order_ready",
          language: { code: "en_US" },
          components: [{ type: "body", parameters: [{ type: "text", text: "Ada" }, { type: "text", text: "12.50" }, { type: "text", text: "fixed" }] }],
        },
      },
    ]);
  });

  it("a template without parameters has no components", () => {
    const def = steps({ id: "t", type: "send", template: { name: "hello_world", language: "en" } });
    expect(contents(start(def))).toEqual([{ type: "template", template: { name: "hello_world", language: { code: "en" }, components: [] } }]);
  });

  it("a template takes the place of text when both are given", () => {
    const def = steps({ id: "t", type: "send", text: "free text", template: { name: "hello_world", language: "en" } });
    expect(contents(start(def)).map((c) => c.type)).toEqual(["template"]);
  });
});

describe("send: 24-hour window", () => {
  const closed = ctx({ windowOpen: false });

  it("free text outside the window becomes a `skipped` effect and the flow goes on", () => {
    const def = steps({ id: "a", type: "send", text: "hello", next: "b" }, { id: "b", type: "end", text: "bye" });
    const out = start(def, closed);
    expect(out.effects).toEqual([
      { type: "skipped", step: "a", reason: "outside_window" },
      { type: "skipped", step: "b", reason: "outside_window" },
    ]);
    expect(out.done).toBe(true);
  });

  it("buttons and lists are free-form too: skipped outside the window", () => {
    const def = steps({ id: "a", type: "send", text: "pick", buttons: [{ id: "x", title: "X" }] });
    expect(start(def, closed).effects).toEqual([{ type: "skipped", step: "a", reason: "outside_window" }]);
  });

  it("templateOutsideWindow is sent instead of free text when the window is closed", () => {
    const def = steps({
      id: "a",
      type: "send",
      text: "Hi {{contact.name}}",
      buttons: [{ id: "x", title: "X" }],
      templateOutsideWindow: { name: "reengage", language: "es", parameters: ["{{contact.name}}"] },
    });
    expect(start(def, closed).effects).toEqual([
      {
        type: "send",
        step: "a",
        content: { type: "template", template: { name: "reengage", language: { code: "es" }, components: [{ type: "body", parameters: [{ type: "text", text: "Ada" }] }] } },
      },
    ]);
    // inside the window the free-form message goes out, not the fallback
    expect(contents(start(def))[0]!.type).toBe("interactive");
  });

  it("template steps always go out, window open or closed", () => {
    const def = steps({ id: "a", type: "send", template: { name: "hello_world", language: "en" } });
    expect(start(def, closed).effects).toEqual(start(def).effects);
    expect(start(def, closed).effects[0]!.type).toBe("send");
  });

  it("engine texts (questions, end text) are skipped outside the window; effects with results are not", () => {
    const def = steps({ id: "o", type: "otp_request", next: "v" }, { id: "v", type: "otp_verify", text: "Code?", approved: "e" }, { id: "e", type: "end", text: "done" });
    const out = start(def, closed);
    expect(out.effects).toEqual([{ type: "otp_request", purpose: "login", channel: undefined, to: "+14155550123" }]);
    const asked = result(def, out.state, { type: "otp_request", ok: true }, closed);
    expect(asked.effects).toEqual([{ type: "skipped", step: "v", reason: "outside_window" }]);
    expect(asked.state.wait).toEqual({ kind: "otp_code" });
    const ask = steps({ id: "q", type: "ask", text: "Name?", save: "n", input: { type: "text" } });
    expect(start(ask, closed).effects).toEqual([{ type: "skipped", step: "q", reason: "outside_window" }]);
    const h = steps({ id: "h", type: "handoff", text: "An agent will write", reason: "vip" });
    expect(start(h, closed).effects).toEqual([{ type: "skipped", step: "h", reason: "outside_window" }, { type: "handoff", reason: "vip" }]);
  });
});
