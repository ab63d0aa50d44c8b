import request from "supertest";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** Publishing flows through the admin API (contract: GET/PUT /admin/flows…), on the whole system. */
let sys: TestSystem;
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);

const PING = {
  name: "ping",
  triggers: [{ type: "keyword", keywords: ["ping-42"] }],
  steps: [{ id: "answer", type: "send", text: "pong from a custom flow" }],
};

beforeAll(async () => {
  sys = await startTestSystem({ workers: false });
  // the producer connection refuses commands until it is ready (no offline queue): wait for it
  await waitFor(() => sys.core.redis.status === "ready");
});
afterAll(async () => {
  await sys?.close();
});

describe("publishing", () => {
  it("the contract's minimal document: 201 version 1, then 200 version 2; list and get", async () => {
    const first = await api().put("/admin/flows/ping").set(admin()).send(PING);
    expect(first.status).toBe(201);
    expect(first.body).toEqual({ name: "ping", version: 1 });

    const second = await api().put("/admin/flows/ping").set(admin()).send({ ...PING, steps: [{ id: "answer", type: "send", text: "pong v2" }] });
    expect(second.status).toBe(200);
    expect(second.body).toEqual({ name: "ping", version: 2 });

    const list = await api().get("/admin/flows").set(admin());
    expect(list.status).toBe(200);
    const ping = list.body.flows.find((f: { name: string }) => f.name === "ping");
    expect(ping).toMatchObject({ name: "ping", version: 2, source: "api", versions: 2, triggers: [{ type: "keyword", keywords: ["ping-42"] }] });
    expect(typeof ping.updatedAt).toBe("string");

    const got = await api().get("/admin/flows/ping").set(admin());
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ name: "ping", version: 2, definition: { name: "ping", steps: [{ id: "answer", type: "send", text: "pong v2" }] } });
    const old = await api().get("/admin/flows/ping?version=1").set(admin());
    expect(old.body).toMatchObject({ name: "ping", version: 1, definition: PING });
    expect((await api().get("/admin/flows/ping?version=9").set(admin())).body.error.code).toBe("flow_not_found");
    const missing = await api().get("/admin/flows/nope").set(admin());
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("flow_not_found");
  });

  it("takes the name from the path when the body has none; a different name is 422", async () => {
    const { name: _n, ...noName } = PING;
    const r = await api().put("/admin/flows/pong").set(admin()).send(noName);
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ name: "pong", version: 1 });
    const bad = await api().put("/admin/flows/other").set(admin()).send(PING);
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe("invalid_flow");
    expect(bad.body.error.details).toEqual([expect.objectContaining({ path: "name" })]);
  });

  it("an invalid document is 422 invalid_flow naming the path of every mistake, and publishes nothing", async () => {
    const r = await api()
      .put("/admin/flows/broken")
      .set(admin())
      .send({
        name: "broken",
        triggers: [{ type: "keyword", keywords: [] }],
        steps: [
          { id: "a", type: "send" },
          { id: "b", type: "teleport" },
          { id: "c", type: "ask", text: "Your email?", input: { type: "email" }, save: "1bad" },
        ],
      });
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: "invalid_flow", message: expect.any(String) });
    const paths = (r.body.error.details as { path: string; message: string }[]).map((d) => d.path);
    expect(paths).toEqual(expect.arrayContaining(["triggers[0].keywords", "steps[0].text", "steps[1].type", "steps[2].save"]));
    for (const d of r.body.error.details) expect(typeof d.message).toBe("string");
    expect((await api().get("/admin/flows/broken").set(admin())).status).toBe(404);

    // a dangling reference is reported with its path too
    const dangling = await api()
      .put("/admin/flows/dangling")
      .set(admin())
      .send({ name: "dangling", steps: [{ id: "a", type: "send", text: "hi", next: "nowhere" }] });
    expect(dangling.status).toBe(422);
    expect(dangling.body.error.details).toEqual([{ path: "steps[0].next", message: "no step with id 'nowhere'" }]);
  });

  it("accepts YAML bodies (application/yaml and text/yaml); YAML mistakes are 422 too", async () => {
    const yaml = ["name: hello", "triggers:", "  - type: keyword", "    keywords: [hello-yaml]", "steps:", "  - id: hi", "    type: send", "    text:", "      en_US: Hello", "      es: Hola", ""].join("\n");
    const r = await api().put("/admin/flows/hello").set(admin()).set("Content-Type", "application/yaml").send(yaml);
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ name: "hello", version: 1 });
    const got = await api().get("/admin/flows/hello").set(admin());
    expect(got.body.definition).toMatchObject({ name: "hello", steps: [{ id: "hi", type: "send", text: { en_US: "Hello", es: "Hola" } }] });

    const again = await api().put("/admin/flows/hello").set(admin()).set("Content-Type", "text/yaml").send(yaml.replace("Hola", "¡Hola!"));
    expect(again.status).toBe(200);
    expect(again.body.version).toBe(2);

    const bad = await api().put("/admin/flows/hello").set(admin()).set("Content-Type", "application/yaml").send("name: hello\nsteps:\n  - id: x\n    type: end\n    bogus: 1\n");
    expect(bad.status).toBe(422);
    expect(bad.body.error.details).toEqual([expect.objectContaining({ path: "steps[0]" })]);
    const syntax = await api().put("/admin/flows/hello").set(admin()).set("Content-Type", "application/yaml").send("name: [unclosed\n");
    expect(syntax.status).toBe(422);
    expect(syntax.body.error.code).toBe("invalid_flow");

    const plain = await api().put("/admin/flows/hello").set(admin()).set("Content-Type", "text/plain").send("name: hello");
    expect(plain.status).toBe(415);
  });

  it("rollback publishes a copy of an older version as a new one; versions lists them", async () => {
    const r = await api().post("/admin/flows/ping/rollback").set(admin()).send({ version: 1 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: "ping", version: 3 });
    const got = await api().get("/admin/flows/ping").set(admin());
    expect(got.body).toMatchObject({ version: 3, definition: PING });

    const versions = await api().get("/admin/flows/ping/versions").set(admin());
    expect(versions.status).toBe(200);
    expect(versions.body.versions.map((v: { version: number; live: boolean }) => [v.version, v.live])).toEqual([
      [3, true],
      [2, false],
      [1, false],
    ]);
    expect(versions.body.versions[0]).toMatchObject({ publishedBy: "admin-key", createdAt: expect.any(String) });

    expect((await api().post("/admin/flows/ping/rollback").set(admin()).send({ version: 99 })).status).toBe(404);
    expect((await api().post("/admin/flows/nope/rollback").set(admin()).send({ version: 1 })).status).toBe(404);
    expect((await api().post("/admin/flows/ping/rollback").set(admin()).send({ version: "x" })).status).toBe(400);

    // every publish, rollback and deletion is audited
    const audit = await sys.core.prisma.auditEvent.findMany({ where: { tenantId: sys.tenantId, type: { startsWith: "flow." } }, orderBy: { createdAt: "asc" } });
    expect(audit.map((a) => a.type)).toEqual(expect.arrayContaining(["flow.published", "flow.rolled_back"]));
  });

  it("delete removes the flow; the live set follows", async () => {
    expect((await api().delete("/admin/flows/pong").set(admin())).status).toBe(200);
    expect((await api().get("/admin/flows/pong").set(admin())).status).toBe(404);
    expect((await api().delete("/admin/flows/pong").set(admin())).status).toBe(404);
    expect((await api().get("/admin/flows").set(admin())).body.flows.map((f: { name: string }) => f.name)).not.toContain("pong");
    const audit = await sys.core.prisma.auditEvent.count({ where: { tenantId: sys.tenantId, type: "flow.deleted" } });
    expect(audit).toBe(1);
  });

  it("takes JSON bodies up to 1 MB (not the admin API's 256 kB); larger ones are 413", async () => {
    const steps = Array.from({ length: 400 }, (_, i) => ({ id: `s${i}`, type: "send", text: `${i} `.padEnd(1000, "x") }));
    const big = { name: "big", steps };
    expect(JSON.stringify(big).length).toBeGreaterThan(300_000);
    const r = await api().put("/admin/flows/big").set(admin()).send(big);
    expect(r.status).toBe(201);
    const huge = { name: "big", steps: steps.map((s) => ({ ...s, text: s.text.padEnd(4000, "y") })) };
    expect(JSON.stringify(huge).length).toBeGreaterThan(1_100_000);
    const tooBig = await api().put("/admin/flows/big").set(admin()).send(huge);
    expect(tooBig.status).toBe(413);
  });

  it("concurrent publishes of one flow get consecutive versions", async () => {
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => api().put("/admin/flows/race").set(admin()).send({ ...PING, name: "race", description: `v${i}` })));
    expect(rs.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    expect(rs.map((r) => r.body.version).sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe("tenants and scopes", () => {
  it("another tenant's key neither sees nor publishes this tenant's flows", async () => {
    const tenant = await api().post("/admin/tenants").set(admin()).send({ phoneNumberId: "209876543210555", displayPhoneNumber: "+15550003333", accessToken: "EAAG-other-flows" });
    expect(tenant.status).toBe(201);
    const key = await api().post(`/admin/tenants/${tenant.body.id}/api-keys`).set(admin()).send({ scopes: ["admin"] });
    expect(key.status).toBe(201);
    const other = { Authorization: `Bearer ${key.body.key}` };

    // only the built-in set, none of this tenant's own flows
    const seen = await waitFor(async () => {
      const r = (await api().get("/admin/flows").set(other)).body as { flows: { name: string; source: string }[] };
      return r.flows.length > 0 && r;
    });
    expect(seen.flows.every((f) => f.source === "builtin")).toBe(true);
    expect(seen.flows.map((f) => f.name)).not.toContain("ping");
    expect((await api().get("/admin/flows/ping").set(other)).status).toBe(404);
    expect((await api().get(`/admin/flows/ping?tenantId=${sys.tenantId}`).set(other)).status).toBe(404);
    expect((await api().put(`/admin/flows/ping?tenantId=${sys.tenantId}`).set(other).send(PING)).status).toBe(404);
    expect((await api().post(`/admin/flows/ping/rollback?tenantId=${sys.tenantId}`).set(other).send({ version: 1 })).status).toBe(404);
    expect((await api().delete(`/admin/flows/ping?tenantId=${sys.tenantId}`).set(other)).status).toBe(404);

    // its own publish is its own: version 1, invisible to the first tenant's live "ping"
    const own = await api().put("/admin/flows/ping").set(other).send({ ...PING, steps: [{ id: "answer", type: "send", text: "other tenant" }] });
    expect(own.status).toBe(201);
    expect(own.body.version).toBe(1);
    expect((await api().get("/admin/flows/ping").set(admin())).body.version).toBe(3);
    // the super-admin may name the tenant
    const viaAdmin = await api().get(`/admin/flows/ping?tenantId=${tenant.body.id}`).set(admin());
    expect(viaAdmin.body).toMatchObject({ version: 1, definition: { steps: [{ text: "other tenant" }] } });

    // a read-only key reads but does not publish; a verify key does neither
    const readKey = await api().post(`/admin/tenants/${tenant.body.id}/api-keys`).set(admin()).send({ scopes: ["read"] });
    const reader = { Authorization: `Bearer ${readKey.body.key}` };
    expect((await api().get("/admin/flows").set(reader)).status).toBe(200);
    expect((await api().put("/admin/flows/ping").set(reader).send(PING)).status).toBe(403);
    expect((await api().delete("/admin/flows/ping").set(reader)).status).toBe(403);
    const verifyKey = await api().post(`/admin/tenants/${tenant.body.id}/api-keys`).set(admin()).send({ scopes: ["verify"] });
    expect((await api().get("/admin/flows").set({ Authorization: `Bearer ${verifyKey.body.key}` })).status).toBe(403);
    expect((await api().get("/admin/flows")).status).toBe(401);
  });

  it("the other admin routes still work behind the flows router", async () => {
    const r = await api().get(`/admin/tenants/${sys.tenantId}`).set(admin());
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(sys.tenantId);
  });
});
