import { CUSTOMER, PHONE, PHONE2, otpTemplate, setup, textMessage } from "./helpers";

/** Meta's error envelope (WA/support/error-codes): message "(#code) title", OAuthException, error_data, fbtrace_id. */
function expectMetaError(body: any, code: number, details?: string | RegExp): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(body.error.code).toBe(code);
  expect(body.error.type).toBe("OAuthException");
  expect(body.error.message).toMatch(new RegExp(`^\\(#${code}\\) \\S`));
  expect(body.error.fbtrace_id).toMatch(/^[\w-]{10,}$/);
  expect(body.error.error_data.messaging_product).toBe("whatsapp");
  if (details !== undefined) expect(body.error.error_data.details).toMatch(details);
}

function withTemplate(patch: (t: any) => void): Record<string, unknown> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const body = otpTemplate() as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  patch(body.template);
  return body;
}

function buttons(titles: string[]): Record<string, unknown> {
  return {
    messaging_product: "whatsapp",
    to: CUSTOMER,
    type: "interactive",
    interactive: { type: "button", body: { text: "Pick one" }, action: { buttons: titles.map((t, i) => ({ type: "reply", reply: { id: `b${i}`, title: t } })) } },
  };
}

function list(rowCount: number): Record<string, unknown> {
  const rows = Array.from({ length: rowCount }, (_, i) => ({ id: `r${i}`, title: `Row ${i}` }));
  return {
    messaging_product: "whatsapp",
    to: CUSTOMER,
    type: "interactive",
    interactive: { type: "list", body: { text: "Choose" }, action: { button: "Options", sections: [{ title: "All", rows }] } },
  };
}

describe("sandbox Graph errors", () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "hi" }); // window open: only validation can fail
  });
  afterEach(async () => {
    await ctx.close();
  });

  describe("auth", () => {
    it("answers a wrong token with 190 / 401 and Graph's envelope without error_data", async () => {
      const res = await ctx.send(otpTemplate(), { token: "EAAGnotTheToken" });
      expect(res.status).toBe(401);
      expect(res.body.error).toMatchObject({ code: 190, type: "OAuthException" });
      expect(res.body.error.error_data).toBeUndefined();
      expect(typeof res.body.error.fbtrace_id).toBe("string");
    });

    it("answers a missing Authorization header with 190 / 401", async () => {
      const res = await ctx.send(otpTemplate(), { token: null });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe(190);
    });

    it("answers another number's token with 190 / 401", async () => {
      const res = await ctx.send(otpTemplate(), { token: PHONE2.accessToken, phoneNumberId: PHONE.phoneNumberId });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe(190);
    });

    it("answers an unknown phone number id with 100 / 400 (GraphMethodException, subcode 33)", async () => {
      const res = await ctx.send(otpTemplate(), { phoneNumberId: "999999999999999" });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 100, error_subcode: 33, type: "GraphMethodException" });
      expect(res.body.error.message).toContain("999999999999999");
    });
  });

  describe("templates", () => {
    it("132001 with HTTP 404 when the template is not in that language", async () => {
      const res = await ctx.send(withTemplate((t) => (t.language.code = "de")));
      expect(res.status).toBe(404);
      expectMetaError(res.body, 132001, "template name (verification_code) does not exist in de");
    });

    it("132001 when the template name is unknown", async () => {
      const res = await ctx.send(withTemplate((t) => (t.name = "verify_code")));
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe(132001);
    });

    it("132000 when body parameters do not match the template's variables", async () => {
      const res = await ctx.send(withTemplate((t) => (t.components[0].parameters = [])));
      expect(res.status).toBe(400);
      expectMetaError(res.body, 132000, "body: number of localizable_params (0) does not match the expected number of params (1)");
      const two = await ctx.send(withTemplate((t) => t.components[0].parameters.push({ type: "text", text: "x" })));
      expect(two.body.error.code).toBe(132000);
    });

    it("131008 when the copy-code url button parameter is missing", async () => {
      const res = await ctx.send(withTemplate((t) => t.components.pop()));
      expect(res.status).toBe(400);
      expectMetaError(res.body, 131008, "Button at index 0 of type Url requires a parameter");
    });

    it("accepts the template in es and pt_BR", async () => {
      for (const code of ["es", "pt_BR"]) {
        const res = await ctx.send(withTemplate((t) => (t.language.code = code)));
        expect(res.status).toBe(200);
      }
    });
  });

  describe("message validation", () => {
    it("text.body up to 4096 characters is accepted, 4097 is not", async () => {
      expect((await ctx.send(textMessage(CUSTOMER, "a".repeat(4096)))).status).toBe(200);
      const res = await ctx.send(textMessage(CUSTOMER, "a".repeat(4097)));
      expect(res.status).toBe(400);
      expectMetaError(res.body, 100, /4096/);
    });

    it("a text without body is 100 naming the parameter", async () => {
      const res = await ctx.send({ messaging_product: "whatsapp", to: CUSTOMER, type: "text", text: {} });
      expect(res.status).toBe(400);
      expectMetaError(res.body, 100, "The parameter text['body'] is required.");
    });

    it("messaging_product is required", async () => {
      const res = await ctx.send({ to: CUSTOMER, type: "text", text: { body: "x" } });
      expect(res.status).toBe(400);
      expectMetaError(res.body, 100, /messaging_product/);
    });

    it("reply buttons: 3 allowed, 4 rejected with 131009", async () => {
      expect((await ctx.send(buttons(["A", "B", "C"]))).status).toBe(200);
      const res = await ctx.send(buttons(["A", "B", "C", "D"]));
      expect(res.status).toBe(400);
      expectMetaError(res.body, 131009);
    });

    it("reply button titles: 20 characters allowed, 21 rejected, duplicates rejected", async () => {
      expect((await ctx.send(buttons(["x".repeat(20)]))).status).toBe(200);
      const long = await ctx.send(buttons(["x".repeat(21)]));
      expect(long.status).toBe(400);
      expectMetaError(long.body, 131009, /title/i);
      const dup = await ctx.send(buttons(["Yes", "Yes"]));
      expect(dup.status).toBe(400);
      expectMetaError(dup.body, 131009, /unique/i);
    });

    it("list: 10 rows allowed, 11 rejected with 131009", async () => {
      expect((await ctx.send(list(10))).status).toBe(200);
      const res = await ctx.send(list(11));
      expect(res.status).toBe(400);
      expectMetaError(res.body, 131009, /row/i);
    });

    it("a body that is not JSON gets Meta's JSON, not an HTML page", async () => {
      const res = await ctx.send("{not json");
      expect(res.status).toBe(400);
      expect(res.headers["content-type"]).toMatch(/application\/json/);
      expect(res.body.error.code).toBe(100);
    });

    it("an unknown API version path component is 2500", async () => {
      const res = await ctx.send(otpTemplate(), { version: "latest" });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(2500);
    });
  });
});
