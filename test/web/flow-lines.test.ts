import { lineOfPath, splitPath, validateFlowSource } from "../../src/web/console/flow-lines";

const YAML = `name: demo
triggers:
  - type: keyword
    keywords: [hi]
steps:
  - id: ask
    type: send
    text: hello
    next: missing
  - id: second
    type: send
`;

describe("flow errors placed at their line (console editor)", () => {
  it("splits validation paths", () => {
    expect(splitPath("steps[2].buttons[0].next")).toEqual(["steps", 2, "buttons", 0, "next"]);
    expect(splitPath("(root)")).toEqual([]);
  });

  it("finds a key's line in YAML, and a missing field's object", () => {
    expect(lineOfPath(YAML, "steps[0].next")).toBe(9);
    expect(lineOfPath(YAML, "steps[1].text")).toBe(10);
    const r = validateFlowSource(YAML, "yaml");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toContainEqual({ path: "steps[0].next", message: "no step with id 'missing'", line: 9 });
  });

  it("gives JSON syntax errors their line, and fills a missing name from the flow's name", () => {
    const r = validateFlowSource('{\n  "name": "x",\n  "steps": [\n}', "json");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toMatchObject({ path: "(root)", line: 4 });
    const named = validateFlowSource(JSON.stringify({ triggers: [], steps: [{ id: "a", type: "send", text: "hi" }] }), "json", "ping");
    expect(named).toEqual({ ok: true, name: "ping" });
    const other = validateFlowSource(JSON.stringify({ name: "pong", steps: [{ id: "a", type: "send", text: "hi" }] }), "json", "ping");
    expect(other.ok).toBe(false);
  });
});
