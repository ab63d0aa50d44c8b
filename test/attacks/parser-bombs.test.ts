import request from "supertest";
import { flowTextProblem, MAX_FLOW_DEPTH, parseFlowText } from "../../src/flows/schema";
import { validateFlowSource } from "../../src/web/console/flow-lines";
import { recordScenario } from "../chaos/report";
import { startTestSystem, type TestSystem } from "../helpers/system";

/**
 * Parser bombs (issue 15 item 16): 0.5 MB of `[` sent to the console's flow validator (a read-scope route) kept the
 * process busy for seconds (and JSON ran the YAML parser for line numbers, which can exhaust memory); every error
 * parsed the document again. Now a linear pre-scan refuses excessive depth (and indentation, and size) before any
 * parser runs, and the text is parsed once.
 */
const BOMB = "[".repeat(500_000);
const deepButClosed = (n: number) => `{"name":"x","steps":${"[".repeat(n)}${"]".repeat(n)}}`;

describe("the pre-scan", () => {
  it("refuses depth, indentation and size cheaply, in JSON and YAML", () => {
    const t0 = Date.now();
    expect(flowTextProblem(BOMB, "json")).toBe(`nested too deeply (more than ${MAX_FLOW_DEPTH} levels)`);
    expect(flowTextProblem(BOMB, "yaml")).toBe(`nested too deeply (more than ${MAX_FLOW_DEPTH} levels)`);
    expect(flowTextProblem("{a: ".repeat(100_000), "yaml")).toMatch(/nested too deeply/);
    expect(flowTextProblem(deepButClosed(MAX_FLOW_DEPTH + 1), "json")).toMatch(/nested too deeply/);
    expect(flowTextProblem(Array.from({ length: 300 }, (_, i) => `${" ".repeat(i)}a:`).join("\n"), "yaml")).toMatch(/indented more than/);
    expect(flowTextProblem("x".repeat(1_000_001), "json")).toMatch(/longer than/);
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it("brackets inside strings do not count; an apostrophe in plain YAML text cannot hide brackets", () => {
    expect(flowTextProblem(`{"text": "${"[".repeat(1000)}"}`, "json")).toBeNull();
    expect(flowTextProblem(`text: '${"[".repeat(1000)}'`, "yaml")).toBeNull();
    expect(flowTextProblem(`text: It's\n${"[".repeat(1000)}`, "yaml")).toMatch(/nested too deeply/);
    expect(flowTextProblem(deepButClosed(MAX_FLOW_DEPTH - 2), "json")).toBeNull();
  });

  it("the CLI's and the API's parser (parseFlowText) answers a bomb at once, with the error at the root", () => {
    for (const file of ["bomb.json", "bomb.yaml"]) {
      const t0 = Date.now();
      const r = parseFlowText(BOMB, file);
      expect(Date.now() - t0).toBeLessThan(500);
      expect(r).toEqual({ ok: false, errors: [{ path: "(root)", message: expect.stringMatching(/^not valid (JSON|YAML): nested too deeply \(more than 64 levels\)$/) }] });
    }
  });

  it("the console validator parses a document once, however many errors it has", () => {
    // the module object the sources call through (a namespace import would be a copy)
    const spy = jest.spyOn(require("yaml") as typeof import("yaml"), "parseDocument");
    try {
      const text = ["name: Bad Name", "triggers: []", "steps:", ...Array.from({ length: 20 }, (_, i) => `  - {id: s${i}, type: send, text: hi, next: nowhere${i}}`)].join("\n");
      const r = validateFlowSource(text, "yaml");
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors.length).toBeGreaterThan(10);
      expect(spy).toHaveBeenCalledTimes(1);
      spy.mockClear();
      const bomb = validateFlowSource(BOMB, "json");
      expect(bomb).toEqual({ ok: false, errors: [{ path: "(root)", message: "not valid JSON: nested too deeply (more than 64 levels)", line: null }] });
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});

describe("through the HTTP routes", () => {
  let sys: TestSystem;
  const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
  beforeAll(async () => {
    sys = await startTestSystem({ workers: false });
  });
  afterAll(async () => {
    await sys.close();
  });

  it("a read-scope console session's validator answers 0.5 MB of `[` at once, and /healthz stays quick", async () => {
    const base = sys.http.url;
    const t = await request(base).post("/admin/tenants").set(admin()).send({ phoneNumberId: "887766554433", displayPhoneNumber: "+1 555 000 7777", accessToken: "EAAG-bomb-tenant-token" });
    expect(t.status).toBe(201);
    const key = await request(base).post(`/admin/tenants/${t.body.id}/api-keys`).set(admin()).send({ scopes: ["read"] });
    expect(key.status).toBe(201);
    const agent = request.agent(base);
    expect((await agent.post("/console/login").type("form").send({ key: key.body.key })).status).toBe(303);
    const csrf = (await agent.get("/console/api/session")).body.csrfToken as string;

    let worst = 0;
    for (const format of ["json", "yaml"] as const) {
      const t0 = Date.now();
      const [res, health] = await Promise.all([
        agent.post("/console/api/flows/validate").set("x-csrf-token", csrf).send({ text: BOMB, format }),
        (async () => {
          await new Promise((r) => setTimeout(r, 5));
          const h0 = Date.now();
          const h = await fetch(`${base}/healthz`);
          return { status: h.status, ms: Date.now() - h0 };
        })(),
      ]);
      worst = Math.max(worst, Date.now() - t0);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: false, errors: [{ path: "(root)", message: `not valid ${format.toUpperCase()}: nested too deeply (more than 64 levels)`, line: null }] });
      expect(health.status).toBe(200);
      expect(health.ms).toBeLessThan(1_000);
    }
    // before: seconds per request (or an out-of-memory crash); the bound is generous for a loaded CI box
    expect(worst).toBeLessThan(2_000);
    recordScenario({
      id: "A9-parser-bombs",
      title: "Deeply nested flow documents (parser bombs)",
      section: "attacks",
      figures: { bombBytes: BOMB.length, worstValidateMs: worst },
      notes: "0.5 MB of `[` to the console validator (read scope), the flows API (JSON and YAML) and the CLI parser is refused by a linear pre-scan before any parser runs.",
    });
  });

  it("publishing a bomb (JSON or YAML) is a 422 invalid_flow at the root, before any parser", async () => {
    const base = sys.http.url;
    const json = await request(base).put("/admin/flows/bomb").set(admin()).set("Content-Type", "application/json").send(deepButClosed(5_000));
    expect(json.status).toBe(422);
    expect(json.body.error).toMatchObject({ code: "invalid_flow", details: [{ path: "(root)", message: "not valid JSON: nested too deeply (more than 64 levels)" }] });
    const yamlRes = await request(base).put("/admin/flows/bomb").set(admin()).set("Content-Type", "application/yaml").send(BOMB);
    expect(yamlRes.status).toBe(422);
    expect(yamlRes.body.error).toMatchObject({ code: "invalid_flow", details: [{ path: "(root)", message: "not valid YAML: nested too deeply (more than 64 levels)" }] });
  });
});
