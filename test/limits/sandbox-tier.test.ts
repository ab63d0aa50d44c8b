import request from "supertest";
import { verifySignature } from "../../src/ingest/verify-signature";
import { APP_SECRET, PHONE, PHONE2, setup } from "../sandbox/helpers";

/** The sandbox plays Meta for the messaging-limit tier: Graph's GET of a number's fields, and the tier webhook. */
describe("sandbox: messaging-limit tier", () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
  });
  afterEach(async () => {
    await ctx.close();
  });

  const read = (phoneNumberId: string, token: string | null, fields = "whatsapp_business_manager_messaging_limit", version = "v23.0") => {
    const req = request(ctx.sandbox.app).get(`/${version}/${phoneNumberId}`).query(fields ? { fields } : {});
    return token === null ? req : req.set("authorization", `Bearer ${token}`);
  };

  it("answers a new number's tier like Graph: TIER_250 and the id", async () => {
    const res = await read(PHONE.phoneNumberId, PHONE.accessToken);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ whatsapp_business_manager_messaging_limit: "TIER_250", id: PHONE.phoneNumberId });
    // the call is in the request log, without the token
    const logged = ctx.sandbox.requests().at(-1)!;
    expect(logged).toMatchObject({ method: "GET", responseStatus: 200 });
    expect(logged.path).toContain("fields=whatsapp_business_manager_messaging_limit");
    expect(logged.authorization).not.toContain(PHONE.accessToken);
  });

  it("refuses a wrong or missing token with 190, another number's token too, and an unknown id or field with 100", async () => {
    for (const token of ["EAAGnotTheRightToken000", null, PHONE2.accessToken]) {
      const res = await read(PHONE.phoneNumberId, token);
      expect(res.status).toBe(401);
      expect(res.body.error).toMatchObject({ code: 190, type: "OAuthException", fbtrace_id: expect.any(String) });
    }
    const unknown = await read("999999999", PHONE.accessToken);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ code: 100, error_subcode: 33 });
    const field = await read(PHONE.phoneNumberId, PHONE.accessToken, "whatsapp_business_manager_messaging_limit,no_such_field");
    expect(field.status).toBe(400);
    expect(field.body.error.message).toContain("no_such_field");
    const version = await read(PHONE.phoneNumberId, PHONE.accessToken, "whatsapp_business_manager_messaging_limit", "latest");
    expect(version.status).toBe(400);
    expect(version.body.error.code).toBe(2500);
  });

  it("sets a number's tier from the control API and sends a signed phone_number_quality_update", async () => {
    const res = await request(ctx.sandbox.app).post("/sandbox/api/messaging-limit").send({ phoneNumberId: PHONE2.phoneNumberId, tier: "TIER_2K" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ phoneNumberId: PHONE2.phoneNumberId, tier: "TIER_2K", oldTier: "TIER_250", event: "UPGRADE", webhookStatus: 200 });
    // Graph now answers the new tier for that number only
    expect((await read(PHONE2.phoneNumberId, PHONE2.accessToken)).body.whatsapp_business_manager_messaging_limit).toBe("TIER_2K");
    expect((await read(PHONE.phoneNumberId, PHONE.accessToken)).body.whatsapp_business_manager_messaging_limit).toBe("TIER_250");

    const hook = ctx.receiver.received.at(-1)!;
    expect(verifySignature(hook.raw, hook.headers["x-hub-signature-256"], APP_SECRET)).toBe(true);
    expect(hook.json.object).toBe("whatsapp_business_account");
    expect(hook.json.entry[0].id).toBe(res.body.wabaId);
    expect(hook.json.entry[0].changes[0]).toEqual({
      field: "phone_number_quality_update",
      value: { display_phone_number: PHONE2.displayPhoneNumber, event: "UPGRADE", old_limit: "TIER_250", current_limit: "TIER_2K", max_daily_conversations_per_business: "TIER_2K" },
    });

    // a lower tier is a DOWNGRADE; webhook: false changes the tier silently
    const down = await request(ctx.sandbox.app).post("/sandbox/api/messaging-limit").send({ phoneNumberId: PHONE2.phoneNumberId, tier: "TIER_250", webhook: false });
    expect(down.body).toMatchObject({ event: "DOWNGRADE", webhookStatus: null });
    expect(ctx.receiver.received).toHaveLength(1);
    expect((await read(PHONE2.phoneNumberId, PHONE2.accessToken)).body.whatsapp_business_manager_messaging_limit).toBe("TIER_250");
  });

  it("validates the control body", async () => {
    const bad = await request(ctx.sandbox.app).post("/sandbox/api/messaging-limit").send({ tier: "TIER_7" });
    expect(bad.status).toBe(400);
    const unknown = await request(ctx.sandbox.app).post("/sandbox/api/messaging-limit").send({ phoneNumberId: "1", tier: "TIER_2K" });
    expect(unknown.status).toBe(404);
    expect(ctx.receiver.received).toHaveLength(0);
  });
});
