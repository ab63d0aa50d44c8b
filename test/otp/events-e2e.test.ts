import request from "supertest";
import { verifyEvent } from "../../src/events/signature";
import { Receiver } from "../events/receiver";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** The business registers a callback and hears every status change, signed, never with the code. */
let sys: TestSystem;
const receiver = new Receiver();
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });

beforeAll(async () => {
  await receiver.listen();
  // events go to a local receiver over http: development mode, opted into explicitly
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5", NODE_ENV: "development" } });
});
afterAll(async () => {
  await sys.close();
  await receiver.close();
});

it("posts signed events for a verification's life, retrying a failing endpoint", async () => {
  const set = await request(sys.http.url).put(`/admin/tenants/${sys.tenantId}/events`).set(admin()).send({ url: `${receiver.url}/hooks` });
  expect(set.status).toBe(200);
  const secret: string = set.body.secret;
  expect(secret).toBeTruthy();
  receiver.script("/hooks", [{ status: 500 }, { status: 200 }]);

  const created = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550160" });
  const code = await waitFor(() => latestCode(sys.sandbox, "14155550160"));
  const ok = await request(sys.http.url).post("/v1/verifications/check").set(admin()).send({ id: created.body.id, code });
  expect(ok.body.status).toBe("approved");

  const types = () => [...new Set(receiver.at("/hooks").map((r) => JSON.parse(r.raw).type as string))];
  await waitFor(() => ["verification.requested", "verification.sent", "verification.approved"].every((t) => types().includes(t)), 15_000);
  for (const r of receiver.at("/hooks")) {
    expect(verifyEvent(secret, r.headers["x-wabot-signature"] as string, r.raw).ok).toBe(true);
    expect(r.raw).not.toContain(code);
    expect(JSON.parse(r.raw).data.verificationId).toBe(created.body.id);
  }
  // the first attempt was answered 500 and was delivered again
  const first = receiver.at("/hooks")[0]!;
  const firstId = JSON.parse(first.raw).id;
  await waitFor(() => receiver.at("/hooks").filter((r) => JSON.parse(r.raw).id === firstId).length >= 2);
  expect(receiver.at("/hooks").filter((r) => JSON.parse(r.raw).id === firstId).length).toBeGreaterThanOrEqual(2);
  // the receiver has answered 200; the worker records it right after
  const row = await waitFor(async () => {
    const r = await sys.core.prisma.eventDelivery.findUniqueOrThrow({ where: { id: firstId } });
    return r.status === "delivered" && r;
  });
  expect(row.status).toBe("delivered");
  expect(row.attempts).toBeGreaterThanOrEqual(2);
});

it("lists the delivery log and replays an event with the same id and body", async () => {
  const log = await request(sys.http.url).get(`/admin/tenants/${sys.tenantId}/event-deliveries`).set(admin());
  expect(log.status).toBe(200);
  const delivered = (log.body.deliveries as { id: string; status: string; type: string }[]).filter((d) => d.status === "delivered");
  expect(delivered.length).toBeGreaterThan(0);
  const target = delivered[0]!;
  const before = receiver.at("/hooks").filter((r) => JSON.parse(r.raw).id === target.id);
  const replay = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/event-deliveries/${target.id}/replay`).set(admin());
  expect(replay.status).toBe(202);
  const after = await waitFor(() => {
    const got = receiver.at("/hooks").filter((r) => JSON.parse(r.raw).id === target.id);
    return got.length > before.length && got;
  });
  expect(after[after.length - 1]!.raw).toBe(before[before.length - 1]!.raw);
  await waitFor(async () => (await sys.core.prisma.eventDelivery.findUniqueOrThrow({ where: { id: target.id } })).status === "delivered");
  const missing = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/event-deliveries/00000000-0000-0000-0000-000000000000/replay`).set(admin());
  expect(missing.status).toBe(404);
  expect(missing.body.error.code).toBe("event_delivery_not_found");
});
