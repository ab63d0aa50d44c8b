import { randomBytes } from "node:crypto";
import { Client } from "pg";
import request from "supertest";
import { reencryptAll, scanForOtherKeys, type Queryable } from "../../src/cli/reencrypt";
import { callbackSecret } from "../../src/events/callback";
import { Keyring, keyIdOf } from "../../src/shared/crypto";
import { contact, envelope, messages } from "../helpers/payloads";
import { postSigned } from "../helpers/signed";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { recordScenario } from "../chaos/report";

/**
 * Secrets at rest, in logs and across a SECRETS_KEY rotation (issue 8, "Bad input and attacks"):
 *
 * 1. key A: a scripted life (a tenant with its own token, app secret and events secret, a tenant API key, pending codes,
 *    a held change carrying a new token, a chat conversation setting a PIN and a recovery email), at debug level.
 *    A dump of every text/json column of every table holds none of the secrets; the logs hold no token, code, PIN,
 *    email or full number.
 * 2. restart with SECRETS_KEY=B, SECRETS_KEY_PREVIOUS=A: the token decrypts, the API key authenticates (and is
 *    re-hashed with B), a pending code checks; `secrets:reencrypt` leaves no ciphertext of A in the dump; run twice
 *    it does nothing the second time.
 * 3. restart with SECRETS_KEY=B alone: still works (the re-hashed pending code, the held change, the key, the tokens).
 */
const A = randomBytes(32).toString("base64");
const B = randomBytes(32).toString("base64");
const kidA = keyIdOf(Buffer.from(A, "base64"));
const kidB = keyIdOf(Buffer.from(B, "base64"));

const T2_TOKEN = "EAAG-tenant2-" + randomBytes(12).toString("hex");
const T2_NEW_TOKEN = "EAAG-tenant2-new-" + randomBytes(12).toString("hex");
const T2_APP_SECRET = randomBytes(16).toString("hex");
const T2_PHONE_ID = "3" + String(Date.now()).slice(-9);
const ADMIN_NUMBER = "+447911123999";
const CUSTOMER_1 = "14155550171"; // default tenant: checked in phase 2 (hash made with A)
const CUSTOMER_2 = "14155550172"; // tenant 2: checked in phase 3 (re-hashed by the command)
const CHAT_CUSTOMER = "14155550173";
const PIN = "583920";
const EMAIL = "zelda.secret@example.com";

const logs: string[] = [];
let sys: TestSystem;
let shared: Record<string, string>;
let tenant2: string;
let apiKey: string;
let eventsSecret: string;
let code1: string;
let code2: string;
let stepUpId: string;
let stepUpCode: string;
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const asTenant = () => ({ Authorization: `Bearer ${apiKey}` });

/** every row of every table as JSON text (what a database dump would show) */
async function dump(s: TestSystem): Promise<{ table: string; text: string }[]> {
  const tables = await s.core.prisma.$queryRaw<{ table_name: string }[]>`
    SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`;
  const out: { table: string; text: string }[] = [];
  for (const { table_name } of tables) {
    const rows = await s.core.prisma.$queryRawUnsafe<{ t: string }[]>(`SELECT row_to_json(x)::text AS t FROM "${table_name}" x`);
    for (const r of rows) out.push({ table: table_name, text: r.t });
  }
  return out;
}
const found = (rows: { table: string; text: string }[], needle: string) => rows.filter((r) => r.text.includes(needle)).map((r) => r.table);

async function withDb<T>(s: TestSystem, fn: (db: Queryable) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: s.config.DATABASE_URL });
  await c.connect();
  try {
    return await fn(c as unknown as Queryable);
  } finally {
    await c.end();
  }
}

/** the same deployment (ids, secrets, queue prefix), restarted with other SECRETS_KEY settings on the same database */
async function restart(keys: Record<string, string>, keep: boolean): Promise<TestSystem> {
  const db = sys.database;
  await sys.close();
  const next = await startTestSystem({ env: { ...shared, ...keys, OUTBOUND_RECIPIENT_GAP_MS: "5" }, database: db, keepDatabase: keep });
  // the sandbox plays Meta for tenant 2's number too (its token as stored: the held change has not applied yet)
  next.sandbox.addPhoneNumber({ phoneNumberId: T2_PHONE_ID, displayPhoneNumber: "15550003001", accessToken: keys.T2_TOKEN ?? T2_TOKEN });
  return next;
}

beforeAll(async () => {
  sys = await startTestSystem({ env: { SECRETS_KEY: A, LOG_LEVEL: "debug", OUTBOUND_RECIPIENT_GAP_MS: "5" }, captureLogs: logs, keepDatabase: true });
  const c = sys.config;
  shared = {
    WHATSAPP_APP_SECRET: c.WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN: c.WHATSAPP_VERIFY_TOKEN, WHATSAPP_PHONE_NUMBER_ID: c.WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_ACCESS_TOKEN: c.WHATSAPP_ACCESS_TOKEN, ADMIN_API_KEY: c.ADMIN_API_KEY, QUEUE_PREFIX: c.QUEUE_PREFIX,
  };
}, 60_000);
afterAll(async () => {
  await sys?.close();
});

describe("secrets at rest and in logs (key A)", () => {
  it("a scripted life of the system leaves no secret in a full database dump, and none in the logs", async () => {
    const t = await api()
      .post("/admin/tenants")
      .set(root())
      .send({
        phoneNumberId: T2_PHONE_ID, displayPhoneNumber: "+1 555 000 3001", accessToken: T2_TOKEN, appSecret: T2_APP_SECRET, adminNumber: ADMIN_NUMBER,
        settings: { otp: { maxSendsPerNumber: 50 } },
      });
    expect(t.status).toBe(201);
    tenant2 = t.body.id;
    expect(JSON.stringify(t.body)).not.toContain(T2_TOKEN);
    expect(JSON.stringify(t.body)).not.toContain(T2_APP_SECRET);
    const k = await api().post(`/admin/tenants/${tenant2}/api-keys`).set(root()).send({ scopes: ["admin", "verify"], name: "ops" });
    expect(k.status).toBe(201);
    apiKey = k.body.key;
    const ev = await api().put(`/admin/tenants/${tenant2}/events`).set(root()).send({ url: "https://hooks.example.invalid/hook" });
    expect(ev.status).toBe(200);
    eventsSecret = ev.body.secret;
    expect(eventsSecret).toEqual(expect.any(String));

    // pending codes on both tenants
    expect((await api().post("/v1/verifications").set(root()).send({ to: `+${CUSTOMER_1}` })).status).toBe(201);
    expect((await api().post("/v1/verifications").set(asTenant()).send({ to: `+${CUSTOMER_2}` })).status).toBe(201);
    code1 = await waitFor(() => latestCode(sys.sandbox, CUSTOMER_1));
    code2 = await waitFor(() => latestCode(sys.sandbox, CUSTOMER_2));

    // a held change carrying a new access token (stored encrypted until its code is confirmed)
    const held = await api().put(`/admin/tenants/${tenant2}/access-token`).set(asTenant()).send({ accessToken: T2_NEW_TOKEN });
    expect(held.status).toBe(202);
    stepUpId = held.body.stepUp.id;
    stepUpCode = await waitFor(() => latestCode(sys.sandbox, ADMIN_NUMBER.slice(1)));

    // a chat: the customer sets a PIN and a recovery email through a published flow
    const flow = {
      triggers: [{ type: "keyword", keywords: ["secure"] }],
      steps: [
        { id: "email", type: "ask", text: "Your recovery email?", input: { type: "email" }, save: "email", next: "pin" },
        { id: "pin", type: "pin_set", text: "Choose a PIN", confirmText: "Again, please", next: "mail" },
        { id: "mail", type: "action", action: "set_recovery_email", params: { email: "{{email}}" }, next: "done" },
        { id: "done", type: "end", text: "All set." },
      ],
    };
    const pub = await api().put("/admin/flows/secure").set(root()).send(flow);
    expect(pub.status).toBe(201);
    const botSaid = (n: number) => waitFor(() => sys.sandbox.conversation(CHAT_CUSTOMER).filter((m) => m.direction === "outbound").length >= n);
    await sys.sandbox.injectInbound({ from: CHAT_CUSTOMER, text: "secure" });
    await botSaid(1);
    await sys.sandbox.injectInbound({ from: CHAT_CUSTOMER, text: EMAIL });
    await botSaid(2);
    await sys.sandbox.injectInbound({ from: CHAT_CUSTOMER, text: PIN });
    await botSaid(3);
    await sys.sandbox.injectInbound({ from: CHAT_CUSTOMER, text: PIN });
    await waitFor(() => sys.sandbox.conversation(CHAT_CUSTOMER).some((m) => m.direction === "outbound" && /All set/.test(m.text)));
    const chatContact = await sys.core.prisma.contact.findFirstOrThrow({ where: { waId: CHAT_CUSTOMER } });
    const pinRow = await sys.core.prisma.contactPin.findFirstOrThrow({ where: { contactId: chatContact.id } });
    expect(pinRow.recoveryEmail).toBe(EMAIL);
    await new Promise((r) => setTimeout(r, 300));

    const rows = await dump(sys);
    const secrets: Record<string, string> = {
      "default access token": sys.config.WHATSAPP_ACCESS_TOKEN,
      "tenant access token": T2_TOKEN,
      "held new access token": T2_NEW_TOKEN,
      "app secret": T2_APP_SECRET,
      "events secret": eventsSecret,
      // the whole secret part: base64url, so it may itself contain "_" (split("_") once gave a 1-character fragment)
      "API key secret": /^wbk_[0-9a-f]{16}_(.+)$/.exec(apiKey)![1]!,
      "admin API key": sys.config.ADMIN_API_KEY,
      "pending code 1": code1,
      "pending code 2": code2,
      "step-up code": stepUpCode,
      PIN,
    };
    for (const [what, value] of Object.entries(secrets)) expect([what, found(rows, value)]).toEqual([what, []]);
    // every ciphertext and stored hash names key A
    const ciphertexts = rows.flatMap((r) => r.text.match(/v1\.[0-9a-f]{8}\./g) ?? []);
    expect(ciphertexts.length).toBeGreaterThanOrEqual(6);
    expect(new Set(ciphertexts)).toEqual(new Set([`v1.${kidA}.`]));

    // the logs, at debug level: no token, code, PIN, email, full number, app secret or key
    expect(logs.length).toBeGreaterThan(50);
    const all = logs.join("\n");
    const leaks = { ...secrets, email: EMAIL, "chat customer's number": CHAT_CUSTOMER, "customer 1's number": CUSTOMER_1, "admin number": ADMIN_NUMBER.slice(1) };
    for (const [what, value] of Object.entries(leaks)) expect([what, logs.filter((l) => l.includes(value)).slice(0, 2)]).toEqual([what, []]);
    recordScenario({
      id: "A5-secrets-dump-and-logs",
      title: "Secrets in a database dump and in debug logs",
      section: "attacks",
      figures: { dumpRows: rows.length, secretsSearched: Object.keys(secrets).length, logLines: logs.length, valuesSearchedInLogs: Object.keys(leaks).length, found: 0 },
      notes:
        "After a scripted life (a tenant with its own token, app secret and events secret, a tenant API key, pending codes, a held token change, " +
        "a chat that sets a PIN and a recovery email), every row of every table (row_to_json) and every debug log line were searched for each secret, " +
        "code, PIN, email and full phone number. Every ciphertext names its key id.",
    });
  });
});

describe("SECRETS_KEY rotation", () => {
  it("B with A as previous: everything made with A still works", async () => {
    sys = await restart({ SECRETS_KEY: B, SECRETS_KEY_PREVIOUS: A }, true);
    expect(sys.core.keyring.keyIds).toEqual([kidB, kidA]);
    // tenant 2's token (made with A) decrypts, and its number sends with it (the sandbox checks the token)
    expect(await sys.core.tenants.accessToken(tenant2)).toBe(T2_TOKEN);
    expect((await api().post("/v1/verifications").set(asTenant()).send({ to: "+14155550174" })).status).toBe(201);
    await waitFor(() => latestCode(sys.sandbox, "14155550174"));
    // its own app secret (made with A) decrypts: a webhook signed by that app is accepted and handled
    const wh = await postSigned(sys.http.url, envelope({ phoneNumberId: T2_PHONE_ID, contacts: [contact("14155550175")], messages: [messages.text("14155550175", "hello")] }), T2_APP_SECRET);
    expect(wh.status).toBe(200);
    await waitFor(() => sys.sandbox.conversation("14155550175", T2_PHONE_ID).some((m) => m.direction === "outbound"));
    // the API key (hashed with A) authenticates, and is re-hashed with B on that use
    const me = await api().get(`/admin/tenants/${tenant2}`).set(asTenant());
    expect(me.status).toBe(200);
    await waitFor(async () => (await sys.core.prisma.apiKey.findFirstOrThrow({ where: { tenantId: tenant2 } })).secretHash.startsWith(`h1.${kidB}.`));
    // a pending code hashed with A checks
    const ok = await api().post("/v1/verifications/check").set(root()).send({ to: `+${CUSTOMER_1}`, code: code1 });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ valid: true, status: "approved" });
    // the events secret (in the settings JSON) decrypts
    const t = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: tenant2 } });
    expect(callbackSecret(sys.core.keyring, t.settings)).toBe(eventsSecret);
  });

  it("secrets:reencrypt moves every ciphertext to B, re-hashes pending codes, and is idempotent", async () => {
    const before = await withDb(sys, (db) => scanForOtherKeys(db, kidB));
    expect(Object.keys(before).length).toBeGreaterThan(0);
    const report = await withDb(sys, (db) => reencryptAll(db, sys.core.keyring, { batchSize: 2 }));
    expect(report.reencrypted).toMatchObject({
      "tenants.access_token_enc": 1, // tenant 2 (the default tenant's was re-written from the environment at start)
      "tenants.app_secret_enc": 1,
      "tenants.settings.events.secretEnc": 1,
      "held_changes.payload_enc": 1,
    });
    expect(report.reencrypted["verifications.code_enc"]).toBeGreaterThanOrEqual(2); // code 2 and the step-up code
    // each pending code's hash is re-made: a verification's on its row, a step-up code's on its held change
    expect((report.rehashed["verifications.code_hash"] ?? 0) + (report.rehashed["held_changes.code_hash"] ?? 0)).toBe(report.reencrypted["verifications.code_enc"]);
    expect(report.rehashed["held_changes.code_hash"]).toBe(1);
    expect(report.unreadable).toEqual({});
    expect(report.remainingCiphertexts).toEqual({});
    expect(report.oldKeyHashes.apiKeys).toBe(0); // re-hashed on use above
    // nothing of A in a full dump, but the hashes of ended verifications (never checked again)
    const rows = await dump(sys);
    expect(found(rows, `v1.${kidA}.`)).toEqual([]);
    const hashesOfA = rows.filter((r) => r.text.includes(`h1.${kidA}.`));
    for (const r of hashesOfA) {
      expect(r.table).toBe("verifications");
      expect(JSON.parse(r.text)).toMatchObject({ code_enc: null });
    }
    const again = await withDb(sys, (db) => reencryptAll(db, sys.core.keyring));
    expect(again.reencrypted).toEqual({});
    expect(again.rehashed).toEqual({});
    recordScenario({
      id: "A6-secrets-key-rotation",
      title: "SECRETS_KEY rotation (A → B with A previous → B alone)",
      section: "attacks",
      figures: {
        reencrypted: Object.values(report.reencrypted).reduce((a, b) => a + b, 0),
        rehashed: Object.values(report.rehashed).reduce((a, b) => a + b, 0),
        ciphertextsOfOldKeyLeft: Object.values(report.remainingCiphertexts).reduce((a, b) => a + b, 0),
        secondRunChanges: Object.keys(again.reencrypted).length + Object.keys(again.rehashed).length,
      },
      notes:
        "Data written under key A; restarted with SECRETS_KEY=B and SECRETS_KEY_PREVIOUS=A (token decrypts, API key authenticates and is re-hashed, " +
        "pending code checks); `npm run secrets:reencrypt` (batches of 2 here); a full scan finds no ciphertext of A; restarted with B alone: " +
        "token, API key, re-hashed pending code, held change and events secret all still work.",
    });
  });

  it("then without A: the token, the key, the re-hashed code and the held change all still work", async () => {
    sys = await restart({ SECRETS_KEY: B }, false);
    expect(sys.core.keyring.keyIds).toEqual([kidB]);
    expect(await sys.core.tenants.accessToken(tenant2)).toBe(T2_TOKEN);
    expect((await api().get(`/admin/tenants/${tenant2}`).set(asTenant())).status).toBe(200);
    const ok = await api().post("/v1/verifications/check").set(asTenant()).send({ to: `+${CUSTOMER_2}`, code: code2 });
    expect(ok.body).toMatchObject({ valid: true, status: "approved" });
    const confirmed = await api().post(`/admin/step-ups/${stepUpId}/confirm`).set(asTenant()).send({ code: stepUpCode });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.stepUp.status).toBe("applied");
    sys.core.tenants.invalidate();
    expect(await sys.core.tenants.accessToken(tenant2)).toBe(T2_NEW_TOKEN);
    const t = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: tenant2 } });
    expect(callbackSecret(sys.core.keyring, t.settings)).toBe(eventsSecret);
    // a ciphertext of a key that is gone is refused with a message that names the fix, never the value
    expect(() => sys.core.keyring.decrypt("tenant-token", new Keyring(Buffer.from(A, "base64")).encrypt("tenant-token", "x"))).toThrow(/SECRETS_KEY_PREVIOUS/);
  });
});
