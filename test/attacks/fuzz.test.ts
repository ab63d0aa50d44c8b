import fc from "fast-check";
import request from "supertest";
import { recordScenario } from "../chaos/report";
import { contact, envelope, messages } from "../helpers/payloads";
import { postSigned } from "../helpers/signed";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Property-based fuzzing (fast-check) of the webhook, with valid signatures, and of every API body: never a 5xx
 * (Redis is up, so not even 503), never a crash, a JSON `{"error": {"code", "message"}}` without a stack trace for
 * every refusal. Afterwards the bot still answers a real message. Runs are bounded (this folder must stay quick);
 * a failure prints fast-check's seed and shrunk counterexample to replay.
 */
let sys: TestSystem;
let fuzzTenant: string;
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const tally = { cases: 0, fiveXX: 0, byStatus: {} as Record<string, number> };

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
  // a tenant of its own for the settings and other admin fuzzing (the default one answers the final message)
  const t = await api().post("/admin/tenants").set(root()).send({ phoneNumberId: "4" + String(Date.now()).slice(-9), displayPhoneNumber: "+1 555 000 4001", accessToken: "EAAG-fuzz-tenant-token" });
  expect(t.status).toBe(201);
  fuzzTenant = t.body.id;
}, 60_000);
afterAll(async () => {
  await sys?.close();
}, 60_000);

/** What every answer must be: a status from `allowed`, JSON, and for a refusal a clear error without internals. */
function checkAnswer(res: request.Response, allowed: (s: number) => boolean, what: string): void {
  tally.cases++;
  tally.byStatus[res.status] = (tally.byStatus[res.status] ?? 0) + 1;
  if (res.status >= 500) tally.fiveXX++;
  if (!allowed(res.status)) throw new Error(`${what}: status ${res.status} ${res.text.slice(0, 300)}`);
  expect(res.headers["content-type"]).toMatch(/application\/json/);
  if (res.status >= 400) {
    expect(res.body.error).toEqual(expect.objectContaining({ code: expect.stringMatching(/^[a-z_]+$/), message: expect.any(String) }));
    expect(res.text).not.toMatch(/\bat [\w.<>]+ \(|node_modules|\.ts:\d+|Prisma|ECONN|SELECT |stack/);
  }
}

// ---- generators --------------------------------------------------------------------------------------------------
const unicode = fc.string({ unit: "binary", maxLength: 40 });
const rtl = fc.constantFrom("مرحبا بالعالم", "שלום", "\u202Eevil\u202C", "‏123456‏", "👩‍👩‍👧‍👦🏳️‍🌈", "\u0000\u0001", "﷽", "ｆｕｌｌ", "Ω≈ç√∫");
const huge = fc.constantFrom("a".repeat(5_000), "9".repeat(70_000), "😀".repeat(2_000));
const deep = fc.integer({ min: 50, max: 3_000 }).map((n) => {
  let v: unknown = "x";
  for (let i = 0; i < n; i++) v = i % 2 ? [v] : { a: v };
  return v;
});
/** a value of any type, weighted towards what breaks parsers and schemas */
const weird: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: unicode },
  { weight: 1, arbitrary: rtl },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, 0, -1, 1e308, -0, "", " ", "null", "[]", "{}", "__proto__", "constructor", "+14155550123", "123456", "00000000-0000-0000-0000-000000000000", "toString") },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 5 }) },
  { weight: 1, arbitrary: huge },
  { weight: 1, arbitrary: deep },
);
/** an object with some of the route's own field names, each with a weird value, plus maybe unknown keys */
const nearValid = (fields: string[]) =>
  fc
    .tuple(
      fc.subarray(fields).chain((keys) => fc.tuple(...keys.map((k) => weird.map((v) => [k, v] as const)))),
      fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__proto__", "constructor", "prototype")), weird, { maxKeys: 2 }),
      fc.boolean(),
    )
    .map(([pairs, extra, withExtra]) => {
      const o: Record<string, unknown> = {};
      for (const [k, v] of pairs) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
      if (withExtra) for (const [k, v] of Object.entries(extra)) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
      return o;
    });
/** a body: near-valid (mostly), any JSON, or raw text that may not be JSON at all */
const body = (fields: string[]) =>
  fc.oneof(
    { weight: 6, arbitrary: nearValid(fields).map((v) => ({ json: v as unknown })) },
    { weight: 2, arbitrary: weird.map((v) => ({ json: v })) },
    { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 50 }), fc.constantFrom("{", '{"a":', "[1,2", "\u0000", "nul", '{"to": "+1"}}', "\uFEFF{}")).map((raw) => ({ raw })) },
  );

// ---- the webhook -------------------------------------------------------------------------------------------------
const webhookStatus = (s: number) => s === 200 || s === 400 || s === 413;

describe("the webhook, signed with the app secret", () => {
  it("any JSON: 200, 400 or 413 with a JSON error; never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(weird, async (v) => {
        const res = await postSigned(sys.http.url, JSON.stringify(v) ?? "null", sys.config.WHATSAPP_APP_SECRET);
        checkAnswer(res, webhookStatus, "webhook any JSON");
      }),
      { numRuns: 120 },
    );
  });

  it("near-valid envelopes (right shape, wrong types, unicode, huge and deep values)", async () => {
    const phone = sys.config.WHATSAPP_PHONE_NUMBER_ID;
    const msg = fc.record(
      {
        from: fc.oneof(fc.constant("14155550190"), weird),
        id: fc.oneof(fc.constant("wamid.x"), weird),
        timestamp: fc.oneof(fc.constant(String(Math.floor(Date.now() / 1000))), weird),
        type: fc.oneof(fc.constantFrom("text", "image", "interactive", "button", "hologram", "reaction", "unsupported", "system"), weird),
        text: fc.oneof(fc.record({ body: fc.oneof(unicode, rtl, weird) }), weird),
        interactive: weird,
        button: weird,
        context: weird,
      },
      { requiredKeys: [] },
    );
    const status = fc.record({ id: weird, status: fc.oneof(fc.constantFrom("sent", "delivered", "read", "failed"), weird), recipient_id: weird, timestamp: weird, errors: weird }, { requiredKeys: [] });
    const value = fc.record(
      {
        messaging_product: fc.oneof(fc.constant("whatsapp"), weird),
        metadata: fc.oneof(fc.record({ phone_number_id: fc.oneof(fc.constant(phone), fc.constant("999999999"), weird), display_phone_number: weird }, { requiredKeys: [] }), weird),
        contacts: fc.oneof(fc.array(fc.record({ wa_id: weird, profile: weird }, { requiredKeys: [] }), { maxLength: 3 }), weird),
        messages: fc.oneof(fc.array(msg, { maxLength: 4 }), weird),
        statuses: fc.oneof(fc.array(status, { maxLength: 3 }), weird),
      },
      { requiredKeys: [] },
    );
    const env = fc.record(
      {
        object: fc.oneof(fc.constant("whatsapp_business_account"), weird),
        entry: fc.oneof(
          fc.array(fc.record({ id: weird, changes: fc.oneof(fc.array(fc.record({ field: fc.oneof(fc.constant("messages"), weird), value: fc.oneof(value, weird) }, { requiredKeys: [] }), { maxLength: 3 }), weird) }, { requiredKeys: [] }), { maxLength: 3 }),
          weird,
        ),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(env, async (e) => {
        const res = await postSigned(sys.http.url, JSON.stringify(e), sys.config.WHATSAPP_APP_SECRET);
        checkAnswer(res, webhookStatus, "webhook near-valid envelope");
      }),
      { numRuns: 200 },
    );
  });

  it("raw bytes that are not JSON, and a body over the limit", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        const raw = Buffer.from(bytes).toString("latin1");
        const res = await postSigned(sys.http.url, raw, sys.config.WHATSAPP_APP_SECRET);
        checkAnswer(res, webhookStatus, "webhook raw bytes");
      }),
      { numRuns: 40 },
    );
    const big = "x".repeat(sys.config.WEBHOOK_BODY_LIMIT_BYTES + 10);
    const res = await postSigned(sys.http.url, big, sys.config.WHATSAPP_APP_SECRET);
    checkAnswer(res, (s) => s === 413, "webhook over the limit");
  });

  it("the process is alive afterwards: a real message is still answered", async () => {
    const res = await postSigned(sys.http.url, envelope({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact("14155550199")], messages: [messages.text("14155550199", "hi")] }), sys.config.WHATSAPP_APP_SECRET);
    expect(res.status).toBe(200);
    await waitFor(() => sys.sandbox.conversation("14155550199").some((m) => m.direction === "outbound"), 15_000);
    expect((await api().get("/healthz")).status).toBe(200);
  });
});

// ---- every API body ----------------------------------------------------------------------------------------------
interface Route {
  method: "post" | "put" | "patch";
  path: () => string;
  fields: string[];
  yaml?: boolean;
}
const t = () => fuzzTenant;
const ROUTES: Route[] = [
  { method: "post", path: () => "/v1/verifications", fields: ["to", "channel", "purpose", "locale", "clientIp"] },
  { method: "post", path: () => "/v1/verifications/check", fields: ["id", "to", "code", "purpose", "clientIp"] },
  { method: "post", path: () => "/v1/flows/fuzzflow/start", fields: ["to", "variables"] },
  { method: "post", path: () => "/v1/contacts/+14155550123/logins", fields: ["id", "device", "location", "ip", "at", "userAgent"] },
  { method: "post", path: () => "/v1/contacts/+14155550123/reverify", fields: ["reason"] },
  { method: "post", path: () => "/admin/tenants", fields: ["name", "phoneNumberId", "displayPhoneNumber", "accessToken", "wabaId", "appSecret", "adminNumber", "settings"] },
  { method: "patch", path: () => `/admin/tenants/${t()}`, fields: ["name", "wabaId"] },
  { method: "patch", path: () => `/admin/tenants/${t()}/settings`, fields: ["otp", "phonePolicy", "limits", "flows", "pin", "retention"] },
  { method: "put", path: () => `/admin/tenants/${t()}/access-token`, fields: ["accessToken"] },
  { method: "put", path: () => `/admin/tenants/${t()}/app-secret`, fields: ["appSecret"] },
  { method: "put", path: () => `/admin/tenants/${t()}/admin-number`, fields: ["number"] },
  { method: "put", path: () => `/admin/tenants/${t()}/events`, fields: ["url"] },
  { method: "post", path: () => `/admin/tenants/${t()}/api-keys`, fields: ["scopes", "name"] },
  { method: "post", path: () => `/admin/tenants/${t()}/contacts/erase`, fields: ["to"] },
  { method: "post", path: () => "/admin/step-ups/00000000-0000-4000-8000-000000000000/confirm", fields: ["code"] },
  { method: "put", path: () => `/admin/flows/fuzzflow?tenantId=${t()}`, fields: ["name", "triggers", "steps", "start", "locale", "texts"] },
  { method: "put", path: () => `/admin/flows/fuzzflow?tenantId=${t()}`, fields: [], yaml: true },
  { method: "post", path: () => `/admin/flows/fuzzflow/rollback?tenantId=${t()}`, fields: ["version"] },
  { method: "post", path: () => "/admin/handoffs/release", fields: ["to"] },
];

describe("every API body", () => {
  it.each(ROUTES.map((r) => [`${r.method.toUpperCase()} ${r.path().replace(/undefined|[0-9a-f-]{36}/, ":id")}${r.yaml ? " (YAML)" : ""}`, r] as const))(
    "%s: only 2xx or 4xx, always a JSON error",
    async (_name, route) => {
      const yamlText = fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
        fc.constantFrom("name: fuzzflow\nsteps: [", "a: &a [*a, *a]\nb: *a", "!!js/function 'x'", "? [a]\n: b", "name: fuzzflow\ntriggers: []\nsteps:\n  - id: s\n    type: end\n", "\t- x", "%YAML 9.9\n---\na"),
        deep.map((v) => JSON.stringify(v)),
      );
      const arb = route.yaml ? yamlText.map((raw) => ({ raw })) : body(route.fields);
      await fc.assert(
        fc.asyncProperty(arb, async (b: { json?: unknown; raw?: string }) => {
          let req = api()[route.method](route.path()).set(root());
          if (route.yaml) req = req.set("content-type", "application/yaml").send(b.raw!);
          else if ("raw" in b) req = req.set("content-type", "application/json").send(b.raw!);
          else req = req.set("content-type", "application/json").send(JSON.stringify(b.json) ?? "null");
          const res = await req;
          checkAnswer(res, (s) => (s >= 200 && s < 300) || (s >= 400 && s < 500), `${route.method} ${route.path()}`);
        }),
        { numRuns: 30 },
      );
    },
    30_000,
  );

  it("regression: a NUL character (\\u0000) in any string field is refused or dropped, never a 500", async () => {
    const nul = "a\u0000b";
    const tries: [string, string, Record<string, unknown>][] = [
      ["post", "/v1/contacts/+14155550123/logins", { id: nul, device: nul, location: nul }],
      ["post", "/v1/verifications", { to: nul, purpose: nul }],
      ["patch", `/admin/tenants/${fuzzTenant}`, { name: nul }],
      ["post", `/admin/tenants/${fuzzTenant}/api-keys`, { scopes: ["read"], name: nul }],
      ["patch", `/admin/tenants/${fuzzTenant}/settings`, { flows: { httpAllowedHosts: [nul] } }],
      ["put", `/admin/flows/fuzzflow?tenantId=${fuzzTenant}`, { triggers: [{ type: "keyword", keywords: [nul] }], steps: [{ id: "a", type: "end", text: nul }] }],
      ["post", "/v1/flows/fuzzflow/start", { to: "+14155550123", variables: { v: nul } }],
      ["post", "/admin/tenants", { phoneNumberId: "7777", displayPhoneNumber: "+1 555 000 7777", accessToken: `EAAG${nul}xxxxxxxxx`, name: nul }],
    ];
    for (const [method, path, b] of tries) {
      const res = await (api() as unknown as Record<string, (p: string) => request.Test>)[method]!(path).set(root()).send(b);
      checkAnswer(res, (st) => st < 500, `${method} ${path} with NUL`);
    }
  });

  it("regression: YAML nested past the parser's stack is a 422 that says so, without the parser's internals", async () => {
    const res = await api().put(`/admin/flows/fuzzflow?tenantId=${fuzzTenant}`).set(root()).set("content-type", "application/yaml").send("[".repeat(20_000));
    expect(res.status).toBe(422);
    expect(res.body.error.details[0].message).toMatch(/nested too deeply/);
    expect(res.text).not.toMatch(/stack/i);
  });

  it("the API still serves afterwards, and the figures go to the report", async () => {
    expect((await api().get(`/admin/tenants/${fuzzTenant}`).set(root())).status).toBe(200);
    expect(tally.fiveXX).toBe(0);
    recordScenario({
      id: "A1-fuzz-webhook-and-api",
      title: "Property-based fuzzing of the webhook and every API body",
      section: "attacks",
      figures: { cases: tally.cases, fiveXX: tally.fiveXX, routes: ROUTES.length + 1, ...Object.fromEntries(Object.entries(tally.byStatus).map(([s, n]) => [`status${s}`, n])) },
      notes:
        "fast-check: any JSON, near-valid envelopes (right shape, wrong types, unicode, right-to-left text, emoji, 70,000-digit strings, " +
        "nesting thousands deep, __proto__ keys), raw bytes and an over-limit body, all signed with the app secret, to POST /webhook; then " +
        "near-valid and arbitrary bodies (and raw non-JSON, and YAML for flows) to every API route that takes one. Every answer was JSON; " +
        "every refusal a `{error: {code, message}}` without internals; the bot answered a real message afterwards.",
    });
  });
});
