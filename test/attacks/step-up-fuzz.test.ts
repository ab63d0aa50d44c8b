import fc from "fast-check";
import request from "supertest";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Property: whatever a tenant admin key does — settings changes (test numbers for the admin number with a fixed
 * code, more attempts, higher send and check limits…), held changes (new key, events secret, admin number, token,
 * callback URL) and confirm attempts with guessed codes (the test number's code, fixed or random digits, another
 * held change's code) — and whatever the operator's break-glass key has put into the settings meanwhile, no held
 * change is ever confirmed without the code that was actually sent to the admin number for it. The real code is read
 * from the sandbox's recorded sends only for the positive control (a confirm with it succeeds).
 */
let sys: TestSystem;
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const TEST_CODE = "135792";
const RUNS = 30;

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
});
afterAll(async () => {
  await sys.close();
});

type SettingsPatch = Record<string, Record<string, unknown>>;
type Op =
  | { kind: "settings"; asRoot: boolean; patch: (admin: string) => SettingsPatch }
  | { kind: "hold"; action: "key" | "secret" | "admin" | "token" | "events" }
  | { kind: "confirm"; target: number; guess: "test" | "zeros" | "digits" | "other" | "admin_tail" | "real"; digits: string }
  | { kind: "cancel"; target: number };

const patches: ((admin: string) => SettingsPatch)[] = [
  (admin) => ({ otp: { testNumbers: [{ number: admin, code: TEST_CODE }] } }),
  () => ({ otp: { maxAttempts: 10 } }),
  () => ({ otp: { maxSendsPerNumber: 50, sendWindowMinutes: 1 } }),
  () => ({ otp: { resendCooldownsSeconds: [0] } }),
  () => ({ limits: { checksPerNumberPer10Minutes: 100000, checksPerTenantPerMinute: 100000 } }),
  () => ({ otp: { warnAfterCode: false } }),
  () => ({ phonePolicy: { deniedTypes: [] } }),
];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("settings" as const), asRoot: fc.boolean(), patch: fc.constantFrom(...patches) }),
  fc.record({ kind: fc.constant("hold" as const), action: fc.constantFrom("key" as const, "secret" as const, "admin" as const, "token" as const, "events" as const) }),
  fc.record({
    kind: fc.constant("confirm" as const),
    target: fc.nat(5),
    guess: fc.constantFrom("test" as const, "zeros" as const, "digits" as const, "other" as const, "admin_tail" as const, "real" as const),
    digits: fc.stringMatching(/^\d{6}$/),
  }),
  fc.record({ kind: fc.constant("cancel" as const), target: fc.nat(5) }),
);

let run = 0;

it("no sequence of settings changes, held changes and guesses confirms a held change without the code sent for it", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 6 }), async (ops) => {
      run++;
      // a fictitious number (so the settings accept it as a test number too) that can be an admin number
      const digits = `1202555${String(100 + (run % 100)).padStart(4, "0")}`;
      const admin = `+${digits}`;
      const t = await api().post("/admin/tenants").set(root()).send({ phoneNumberId: String(60000 + run), displayPhoneNumber: `1555006${String(run).padStart(4, "0")}`, accessToken: `EAAG-fuzz-${run}-token`, adminNumber: admin });
      expect(t.status).toBe(201);
      const tenantId = t.body.id as string;
      const k = await api().post(`/admin/tenants/${tenantId}/api-keys`).set(root()).send({ scopes: ["admin", "read"] });
      const key = { Authorization: `Bearer ${k.body.key}` };
      const sends = () => sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound" && m.type === "template").length;

      // each held change and the code the sandbox saw sent for it (for the invariant and the positive control only)
      const held: { id: string; code: string }[] = [];
      const confirmedWith: { id: string; guess: string }[] = [];

      const afterHold = async (res: request.Response, before: number) => {
        if (res.status === 429) return; // the fixed step-up send limit
        expect(res.status).toBe(202);
        await waitFor(() => sends() > before);
        held.push({ id: res.body.stepUp.id, code: latestCode(sys.sandbox, digits)! });
      };

      for (const op of ops) {
        if (op.kind === "settings") {
          const before = sends();
          const settingsBefore = (await api().get(`/admin/tenants/${tenantId}`).set(root())).body.settings;
          const res = await api().patch(`/admin/tenants/${tenantId}/settings`).set(op.asRoot ? root() : key).send(op.patch(admin));
          if (op.asRoot) expect(res.status).toBe(200);
          else if (res.status === 200) {
            // a tenant key never applies a security setting at once: only a patch that changes nothing applies
            expect((await api().get(`/admin/tenants/${tenantId}`).set(root())).body.settings).toEqual(settingsBefore);
          } else {
            expect([202, 429]).toContain(res.status);
            await afterHold(res, before);
          }
        } else if (op.kind === "hold") {
          const before = sends();
          const path = `/admin/tenants/${tenantId}`;
          const res =
            op.action === "key" ? await api().post(`${path}/api-keys`).set(key).send({ scopes: ["admin"] })
            : op.action === "secret" ? await api().post(`${path}/events/rotate-secret`).set(key)
            : op.action === "admin" ? await api().put(`${path}/admin-number`).set(key).send({ number: admin })
            : op.action === "token" ? await api().put(`${path}/access-token`).set(key).send({ accessToken: `EAAG-fuzz-${run}-rotated` })
            : await api().put(`${path}/events`).set(key).send({ url: `https://hooks-${run}.example.invalid/events` });
          await afterHold(res, before);
        } else if (held.length > 0) {
          const target = held[op.target % held.length]!;
          if (op.kind === "cancel") {
            expect([200, 409]).toContain((await api().post(`/admin/step-ups/${target.id}/cancel`).set(key)).status);
            continue;
          }
          const other = held.find((h) => h.id !== target.id)?.code ?? op.digits;
          const guess = { test: TEST_CODE, zeros: "000000", digits: op.digits, other, admin_tail: digits.slice(-6), real: target.code }[op.guess];
          const res = await api().post(`/admin/step-ups/${target.id}/confirm`).set(key).send({ code: guess });
          expect([200, 201, 409, 422, 429]).toContain(res.status);
          if (res.status < 300) confirmedWith.push({ id: target.id, guess });
        }
      }

      // the invariant: every confirmation used the code sent for that change, and every applied change was confirmed
      for (const c of confirmedWith) expect(c.guess).toBe(held.find((h) => h.id === c.id)!.code);
      const applied = await sys.core.prisma.heldChange.findMany({ where: { tenantId, status: "applied" }, select: { id: true } });
      expect(applied.map((a) => a.id).sort()).toEqual([...new Set(confirmedWith.map((c) => c.id))].sort());

      // positive control: a fresh held change confirms with the code the admin number got
      const before = sends();
      const res = await api().post(`/admin/tenants/${tenantId}/api-keys`).set(key).send({ scopes: ["verify"] });
      if (res.status === 429) return;
      expect(res.status).toBe(202);
      await waitFor(() => sends() > before);
      const ok = await api().post(`/admin/step-ups/${res.body.stepUp.id}/confirm`).set(key).send({ code: latestCode(sys.sandbox, digits)! });
      expect(ok.status).toBe(201);
    }),
    { numRuns: RUNS },
  );
}, 120_000);
