import { parseFlowText, validateFlow, type FlowError } from "../../src/flows/schema";

const MINIMAL = {
  name: "ping",
  triggers: [{ type: "keyword", keywords: ["ping-42"] }],
  steps: [{ id: "answer", type: "send", text: "pong from a custom flow" }],
};

function errorsOf(doc: unknown): FlowError[] {
  const v = validateFlow(doc);
  if (v.ok) throw new Error("expected the document to be invalid");
  return v.errors;
}
function pathsOf(doc: unknown): string[] {
  return errorsOf(doc).map((e) => e.path);
}
const doc = (steps: unknown[], extra: Record<string, unknown> = {}) => ({ name: "x", steps, ...extra });

describe("schema: valid documents", () => {
  it("accepts the contract's minimal document and applies the defaults", () => {
    const v = validateFlow(MINIMAL);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.flow.name).toBe("ping");
    expect(v.flow.triggers).toEqual([{ type: "keyword", keywords: ["ping-42"], match: "exact" }]);
    expect(v.flow.variables).toEqual({});
    expect(v.flow.steps).toEqual([{ id: "answer", type: "send", text: "pong from a custom flow" }]);
  });

  it("accepts the minimal document as JSON text and as YAML text", () => {
    expect(parseFlowText(JSON.stringify(MINIMAL)).ok).toBe(true);
    const yaml = ["name: ping", "triggers:", "  - type: keyword", "    keywords: [ping-42]", "steps:", "  - id: answer", "    type: send", "    text: pong from a custom flow", ""].join("\n");
    const v = parseFlowText(yaml, "ping.yaml");
    expect(v).toEqual(validateFlow(MINIMAL));
    expect(parseFlowText(yaml, "PING.YML").ok).toBe(true);
  });

  it("fills step defaults (ask retries/secret, digits bounds, otp purpose, http method/timeout)", () => {
    const v = validateFlow(
      doc([
        { id: "a", type: "ask", text: "q", save: "v", input: { type: "digits" }, next: "o" },
        { id: "o", type: "otp_request", next: "h" },
        { id: "h", type: "http", url: "https://example.com/hook" },
      ]),
    );
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.flow.steps[0]).toMatchObject({ secret: false, retries: 2, input: { type: "digits", min: 1, max: 64 } });
    expect(v.flow.steps[1]).toMatchObject({ purpose: "login" });
    expect(v.flow.steps[2]).toMatchObject({ method: "POST", timeoutMs: 5000 });
  });

  it("accepts a document using every step type with cross references resolved", () => {
    const v = validateFlow(
      doc(
        [
          { id: "hi", type: "send", text: { en_US: "Hi", es: "Hola" }, buttons: [{ id: "b1", title: "Go", next: "ask" }], next: "ask" },
          { id: "ask", type: "ask", text: "Email?", save: "email", input: { type: "email" }, onInvalid: "end", next: "br" },
          { id: "br", type: "branch", cases: [{ when: { var: "email", exists: true }, next: "set" }], default: "end" },
          { id: "set", type: "set", values: { a: "x", b: 1, c: true, d: null }, next: "otp" },
          { id: "otp", type: "otp_request", onError: "end", next: "ver" },
          { id: "ver", type: "otp_verify", text: "Code?", approved: "pin", wrong: "end", expired: "end", locked: "end" },
          { id: "pin", type: "pin_set", text: "PIN?", confirmText: "Again", next: "pv" },
          { id: "pv", type: "pin_verify", text: "PIN?", approved: "http", notSet: "end" },
          { id: "http", type: "http", url: "https://example.com/x", save: "api", onError: "end", next: "go" },
          { id: "go", type: "goto", step: "hand" },
          { id: "hand", type: "handoff", reason: "help" },
          { id: "end", type: "end", text: "Bye" },
        ],
        { start: "hi", variables: { plan: "basic", n: 1 } },
      ),
    );
    expect(v).toMatchObject({ ok: true });
  });
});

describe("schema: exact error paths", () => {
  it("a bad flow name is reported at `name`", () => {
    for (const name of ["Ping", "has space", "-dash-first", "", "x".repeat(65)]) {
      expect(pathsOf({ ...MINIMAL, name })).toEqual(["name"]);
    }
    expect(validateFlow({ ...MINIMAL, name: "a".repeat(64) }).ok).toBe(true);
  });

  it("an unknown step type is reported at steps[i].type, naming the type", () => {
    const errs = errorsOf(doc([{ id: "a", type: "send", text: "t" }, { id: "b", type: "sendd" }]));
    expect(errs).toHaveLength(1);
    expect(errs[0]!.path).toBe("steps[1].type");
    expect(errs[0]!.message).toContain('"sendd"');
    expect(pathsOf(doc([{ id: "a" }]))).toEqual(["steps[0].type"]);
    expect(pathsOf(doc([null]))).toEqual(["steps[0].type"]);
  });

  it.each([
    ["send", { id: "s", type: "send" }, ["steps[0].text"]],
    ["ask", { id: "s", type: "ask" }, ["steps[0].text", "steps[0].input", "steps[0].save"]],
    ["branch", { id: "s", type: "branch" }, ["steps[0].cases", "steps[0].default"]],
    ["set", { id: "s", type: "set" }, ["steps[0].values"]],
    ["otp_verify", { id: "s", type: "otp_verify" }, ["steps[0].text", "steps[0].approved"]],
    ["pin_set", { id: "s", type: "pin_set" }, ["steps[0].text", "steps[0].confirmText"]],
    ["pin_verify", { id: "s", type: "pin_verify" }, ["steps[0].text", "steps[0].approved"]],
    ["http", { id: "s", type: "http" }, ["steps[0].url"]],
    ["goto", { id: "s", type: "goto" }, ["steps[0].step"]],
    ["any (id)", { type: "end" }, ["steps[0].id"]],
  ])("missing required fields of %s are reported at their paths", (_kind, step, paths) => {
    expect(pathsOf(doc([step])).sort()).toEqual([...paths].sort());
  });

  it("steps without required fields beyond id are valid: otp_request, handoff, end", () => {
    expect(validateFlow(doc([{ id: "a", type: "otp_request" }, { id: "b", type: "handoff" }, { id: "c", type: "end" }])).ok).toBe(true);
  });

  it("a `next` to a missing step is reported at steps[i].next with the id", () => {
    const errs = errorsOf(doc([{ id: "a", type: "send", text: "t", next: "b" }, { id: "b", type: "send", text: "t", next: "nowhere" }]));
    expect(errs).toEqual([{ path: "steps[1].next", message: "no step with id 'nowhere'" }]);
  });

  it("every kind of target is checked at its own path", () => {
    const errs = errorsOf(
      doc(
        [
          { id: "a", type: "send", text: "t", buttons: [{ id: "b", title: "B", next: "m1" }] },
          { id: "l", type: "send", text: "t", list: { button: "Pick", sections: [{ rows: [{ id: "r", title: "R" }, { id: "r2", title: "R2", next: "m2" }] }] } },
          { id: "q", type: "ask", text: "q", save: "v", input: { type: "choice", choices: [{ id: "c", title: "C", next: "m3" }] }, onInvalid: "m4" },
          { id: "br", type: "branch", cases: [{ when: { var: "v", equals: 1 }, next: "a" }, { when: { var: "v", equals: 2 }, next: "m5" }], default: "m6" },
          { id: "v", type: "otp_verify", text: "c", approved: "m7", wrong: "m8", expired: "m9", locked: "m10" },
          { id: "pv", type: "pin_verify", text: "p", approved: "a", notSet: "m11" },
          { id: "h", type: "http", url: "https://example.com", onError: "m12" },
          { id: "g", type: "goto", step: "m13" },
        ],
        { start: "m14" },
      ),
    );
    expect(errs.map((e) => [e.path, e.message]).sort()).toEqual(
      [
        ["steps[0].buttons[0].next", "m1"],
        ["steps[1].list.sections[0].rows[1].next", "m2"],
        ["steps[2].input.choices[0].next", "m3"],
        ["steps[2].onInvalid", "m4"],
        ["steps[3].cases[1].next", "m5"],
        ["steps[3].default", "m6"],
        ["steps[4].approved", "m7"],
        ["steps[4].wrong", "m8"],
        ["steps[4].expired", "m9"],
        ["steps[4].locked", "m10"],
        ["steps[5].notSet", "m11"],
        ["steps[6].onError", "m12"],
        ["steps[7].step", "m13"],
        ["start", "m14"],
      ]
        .map(([p, id]) => [p, `no step with id '${id}'`])
        .sort(),
    );
  });

  it("a goto to another flow is not checked against this flow's step ids", () => {
    expect(validateFlow(doc([{ id: "g", type: "goto", flow: "other-flow" }])).ok).toBe(true);
  });

  it("duplicate step ids are reported at the later step, naming the first", () => {
    expect(errorsOf(doc([{ id: "a", type: "end" }, { id: "b", type: "end" }, { id: "a", type: "end" }]))).toEqual([
      { path: "steps[2].id", message: "duplicate step id 'a' (also steps[0])" },
    ]);
  });

  it("a bad step id is reported at steps[i].id", () => {
    expect(pathsOf(doc([{ id: "has space", type: "end" }]))).toEqual(["steps[0].id"]);
    expect(pathsOf(doc([{ id: "x".repeat(65), type: "end" }]))).toEqual(["steps[0].id"]);
  });

  it("a bad regular expression in a pattern trigger is reported at triggers[i].pattern", () => {
    const errs = errorsOf({ ...MINIMAL, triggers: [{ type: "keyword", keywords: ["a"] }, { type: "pattern", pattern: "(unclosed" }] });
    expect(errs).toEqual([{ path: "triggers[1].pattern", message: expect.stringMatching(/^not a valid regular expression \(RE2: missing closing \): `\(unclosed`\)$/) }]);
    expect(validateFlow({ ...MINIMAL, triggers: [{ type: "pattern", pattern: "^order\\s+\\d+$" }] }).ok).toBe(true);
  });

  it("bad triggers: unknown type, empty keyword list, unknown match mode, empty button ids", () => {
    expect(pathsOf({ ...MINIMAL, triggers: [{ type: "sms" }] })).toEqual(["triggers[0].type"]);
    expect(pathsOf({ ...MINIMAL, triggers: [{ type: "keyword", keywords: [] }] })).toEqual(["triggers[0].keywords"]);
    expect(pathsOf({ ...MINIMAL, triggers: [{ type: "keyword", keywords: ["a"], match: "regex" }] })).toEqual(["triggers[0].match"]);
    expect(pathsOf({ ...MINIMAL, triggers: [{ type: "button", ids: [] }] })).toEqual(["triggers[0].ids"]);
  });

  it("more than 3 buttons is reported at steps[i].buttons", () => {
    const buttons = [1, 2, 3, 4].map((n) => ({ id: `b${n}`, title: `B${n}` }));
    expect(pathsOf(doc([{ id: "s", type: "send", text: "t", buttons }]))).toEqual(["steps[0].buttons"]);
    expect(validateFlow(doc([{ id: "s", type: "send", text: "t", buttons: buttons.slice(0, 3) }])).ok).toBe(true);
  });

  it("a list with more than 10 rows (one section, or in all) is refused", () => {
    const rows = (n: number, p: string) => Array.from({ length: n }, (_, i) => ({ id: `${p}${i}`, title: `${p}${i}` }));
    expect(pathsOf(doc([{ id: "s", type: "send", text: "t", list: { button: "Pick", sections: [{ rows: rows(11, "a") }] } }]))).toEqual([
      "steps[0].list.sections[0].rows",
    ]);
    expect(errorsOf(doc([{ id: "s", type: "send", text: "t", list: { button: "Pick", sections: [{ rows: rows(6, "a") }, { rows: rows(5, "b") }] } }]))).toEqual([
      { path: "steps[0].list.sections", message: "a list holds at most 10 rows in all" },
    ]);
    expect(validateFlow(doc([{ id: "s", type: "send", text: "t", list: { button: "Pick", sections: [{ rows: rows(5, "a") }, { rows: rows(5, "b") }] } }])).ok).toBe(true);
  });

  it("buttons and a list together are refused at steps[i].list", () => {
    expect(
      errorsOf(doc([{ id: "s", type: "send", text: "t", buttons: [{ id: "b", title: "B" }], list: { button: "Pick", sections: [{ rows: [{ id: "r", title: "R" }] }] } }])),
    ).toEqual([{ path: "steps[0].list", message: "buttons and list cannot be combined" }]);
  });

  it("buttons need a text body (a template alone is not enough)", () => {
    expect(errorsOf(doc([{ id: "s", type: "send", template: { name: "hello", language: "en" }, buttons: [{ id: "b", title: "B" }] }]))).toEqual([
      { path: "steps[0].text", message: "buttons and lists need a text body" },
    ]);
    expect(errorsOf(doc([{ id: "s", type: "send" }]))).toEqual([{ path: "steps[0].text", message: "a send step needs text or template" }]);
  });

  it("bad variable names are reported at their paths (ask save, set values, http body, variables)", () => {
    const paths = pathsOf(
      doc(
        [
          { id: "a", type: "ask", text: "q", save: "1st", input: { type: "email" } },
          { id: "s", type: "set", values: { "bad-name": 1 } },
          { id: "h", type: "http", url: "https://example.com", body: ["ok", "no.dots"], save: "9" },
        ],
        { variables: { "has space": 1 } },
      ),
    );
    expect(paths.sort()).toEqual(["steps[0].save", "steps[1].values.bad-name", "steps[2].body[1]", "steps[2].save", "variables.has space"].sort());
  });

  it("an unknown top-level field is refused, naming the field", () => {
    const errs = errorsOf({ ...MINIMAL, colour: "blue" });
    expect(errs).toHaveLength(1);
    expect(errs[0]!.path).toBe("(root)");
    expect(errs[0]!.message).toContain("colour");
  });

  it("an unknown field inside a step is refused at that step", () => {
    const errs = errorsOf(doc([{ id: "a", type: "send", text: "t", txt: "typo" }]));
    expect(errs).toHaveLength(1);
    expect(errs[0]!.path).toBe("steps[0]");
    expect(errs[0]!.message).toContain("txt");
  });

  it("a bad locale key in a localized text is refused", () => {
    expect(validateFlow(doc([{ id: "a", type: "send", text: { en_US: "Hi", es: "Hola", pt_BR: "Oi" } }])).ok).toBe(true);
    expect(pathsOf(doc([{ id: "a", type: "send", text: { english: "Hi" } }]))[0]).toMatch(/^steps\[0\]\.text/);
    expect(pathsOf(doc([{ id: "a", type: "send", text: {} }]))[0]).toMatch(/^steps\[0\]\.text/);
  });

  it("a bad template name is reported inside the template", () => {
    expect(pathsOf(doc([{ id: "a", type: "send", template: { name: "Bad Name", language: "en" } }]))).toEqual(["steps[0].template.name"]);
  });

  it("no steps, or steps that are not a list, are refused at `steps`", () => {
    expect(pathsOf({ name: "x", steps: [] })).toEqual(["steps"]);
    expect(pathsOf({ name: "x", steps: "nope" })).toEqual(["steps"]);
    expect(pathsOf({ name: "x" })).toEqual(["steps"]);
  });

  it("a document that is not an object is refused at (root)", () => {
    for (const input of [null, 42, "flow", []]) expect(pathsOf(input)).toContain("(root)");
  });

  it("several mistakes are all reported at once", () => {
    const errs = errorsOf({
      name: "Bad Name",
      colour: "blue",
      triggers: [{ type: "pattern", pattern: "[" }],
      steps: [
        { id: "a", type: "nope" },
        { id: "b", type: "ask", text: "q", save: "ok", input: { type: "digits", min: 0 } },
        { id: "c", type: "send", text: "t", buttons: [1, 2, 3, 4].map((n) => ({ id: `b${n}`, title: "x" })) },
        { id: "d", type: "set", values: { "1x": 1 } },
      ],
    });
    expect(errs.map((e) => e.path).sort()).toEqual(
      ["(root)", "name", "triggers[0].pattern", "steps[0].type", "steps[1].input.min", "steps[2].buttons", "steps[3].values.1x"].sort(),
    );
  });

  it("several cross-reference mistakes are all reported at once", () => {
    const errs = errorsOf(
      doc(
        [
          { id: "a", type: "send", text: "t", next: "x1" },
          { id: "a", type: "send", text: "t", next: "x2" },
        ],
        { start: "x3" },
      ),
    );
    expect(errs.map((e) => e.path).sort()).toEqual(["start", "steps[0].next", "steps[1].id", "steps[1].next"].sort());
  });
});

describe("schema: parseFlowText", () => {
  it("a YAML syntax error is reported at (root) with its line", () => {
    const yaml = ["name: x", "steps:", "  - id: a", "    type: send", "  text: misindented", ""].join("\n");
    const v = parseFlowText(yaml, "flow.yaml");
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.errors).toHaveLength(1);
    expect(v.errors[0]!.path).toBe("(root)");
    expect(v.errors[0]!.message).toMatch(/^not valid YAML \(line 5\): /);
  });

  it("a duplicate YAML key is a syntax error on its line", () => {
    const v = parseFlowText("name: x\nname: y\nsteps: []\n", "f.yml");
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.errors[0]!.message).toMatch(/^not valid YAML \(line 2\)/);
  });

  it("invalid JSON is reported as JSON (by default, and for .json files)", () => {
    for (const name of [undefined, "flow.json"]) {
      const v = parseFlowText("{ not json", name);
      expect(v.ok).toBe(false);
      if (!v.ok) {
        expect(v.errors).toHaveLength(1);
        expect(v.errors[0]!.path).toBe("(root)");
        expect(v.errors[0]!.message).toMatch(/^not valid JSON: /);
      }
    }
  });

  it("YAML content in a .json file is a JSON error, not parsed as YAML", () => {
    const v = parseFlowText("name: ping\n", "flow.json");
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.errors[0]!.message).toMatch(/^not valid JSON/);
  });

  it("well-formed YAML with schema mistakes reports the schema paths", () => {
    const yaml = ["name: x", "steps:", "  - id: a", "    type: send", "    text: hi", "    next: ghost", ""].join("\n");
    expect(parseFlowText(yaml, "x.yaml")).toEqual({ ok: false, errors: [{ path: "steps[0].next", message: "no step with id 'ghost'" }] });
  });
});
