import http from "node:http";
import type { AddressInfo } from "node:net";
import { CloudApiClient, parseRetryAfter } from "../../src/providers/whatsapp/cloud-api.client";
import { META_ERROR_CLASSES, classifyMetaError } from "../../src/providers/whatsapp/errors";
import { buildSendBody } from "../../src/providers/whatsapp/payload";
import { FakeGraph, metaError } from "./fake-graph";

const PNID = "106540352242922";
const TOKEN = "EAAGsecret-token-value";

let graph: FakeGraph;
let client: CloudApiClient;

beforeAll(async () => {
  graph = new FakeGraph();
  const url = await graph.listen();
  client = new CloudApiClient({ baseUrl: url, version: "v23.0", timeoutMs: 400 });
});
afterAll(async () => {
  client.close();
  await graph.close();
});
beforeEach(() => graph.reset());

function body(content: Parameters<typeof buildSendBody>[0], contact: Parameters<typeof buildSendBody>[1] = { phoneE164: "+14155550123" }) {
  const built = buildSendBody(content, contact);
  if (!built.ok) throw new Error(built.reason);
  return built.body;
}

describe("what goes to Meta", () => {
  test("a text: exact JSON, path, bearer token", async () => {
    const res = await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "Hello there" } }, { waId: "14155550123" }));
    expect(res).toEqual({ ok: true, wamid: "wamid.fake1", waId: "14155550123", httpStatus: 200 });
    const [req] = graph.requests;
    expect(req!.method).toBe("POST");
    expect(req!.path).toBe(`/v23.0/${PNID}/messages`);
    expect(req!.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req!.contentType).toMatch(/^application\/json/);
    expect(req!.raw).toBe('{"messaging_product":"whatsapp","recipient_type":"individual","to":"+14155550123","type":"text","text":{"body":"Hello there"}}');
  });

  test("the contract's OTP authentication template, byte for byte", async () => {
    const template = {
      type: "template",
      template: {
        name: "verification_code",
        language: { code: "en_US" },
        components: [
          { type: "body", parameters: [{ type: "text", text: "123456" }] },
          { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: "123456" }] },
        ],
      },
    };
    const res = await client.sendMessage(PNID, TOKEN, body(template));
    expect(res.ok).toBe(true);
    const expected = {
      messaging_product: "whatsapp",
      recipient_type: "individual",
      to: "+14155550123",
      type: "template",
      template: {
        name: "verification_code",
        language: { code: "en_US" },
        components: [
          { type: "body", parameters: [{ type: "text", text: "123456" }] },
          { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: "123456" }] },
        ],
      },
    };
    expect(graph.requests[0]!.body).toEqual(expected);
    expect(graph.requests[0]!.raw).toBe(JSON.stringify(expected));
  });

  test("a username-only contact is addressed by its BSUID in `recipient`", () => {
    const b = body({ type: "text", text: { body: "hi" } }, { userId: "US.13491208655302741918" });
    expect(b).toEqual({ messaging_product: "whatsapp", recipient_type: "individual", recipient: "US.13491208655302741918", type: "text", text: { body: "hi" } });
    expect("to" in b).toBe(false);
  });

  test("payload rules are checked before anything is sent", () => {
    expect(buildSendBody({ type: "text", text: { body: "" } }, { waId: "14155550123" })).toMatchObject({ ok: false });
    expect(buildSendBody({ type: "text", text: { body: "x" } }, {})).toMatchObject({ ok: false, reason: expect.stringMatching(/neither/) });
    const fourButtons = [1, 2, 3, 4].map((i) => ({ type: "reply", reply: { id: `b${i}`, title: `B${i}` } }));
    expect(buildSendBody({ type: "interactive", interactive: { type: "button", body: { text: "pick" }, action: { buttons: fourButtons } } }, { waId: "14155550123" })).toMatchObject({ ok: false });
    expect(buildSendBody({ type: "interactive", interactive: { type: "button", body: { text: "pick" }, action: { buttons: fourButtons.slice(0, 3) } } }, { waId: "14155550123" })).toMatchObject({ ok: true });
  });

  test("mark as read", async () => {
    expect(await client.markAsRead(PNID, TOKEN, "wamid.IN1")).toEqual({ ok: true });
    expect(graph.requests[0]!.raw).toBe('{"messaging_product":"whatsapp","status":"read","message_id":"wamid.IN1"}');
  });
});

describe("failures are classified values, never exceptions", () => {
  test("Meta's error envelope: code, title, details, kind", async () => {
    graph.next(metaError(400, 131026, { title: "Message undeliverable", details: "not a WhatsApp user" }));
    expect(await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toEqual({
      ok: false,
      kind: "permanent",
      httpStatus: 400,
      code: 131026,
      title: "Message undeliverable",
      details: "not a WhatsApp user",
    });
    graph.next(metaError(400, 130429, { headers: { "retry-after": "3" } }));
    expect(await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toMatchObject({ ok: false, kind: "transient", code: 130429, retryAfterMs: 3000 });
    graph.next(metaError(401, 190));
    expect(await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toMatchObject({ ok: false, kind: "permanent", code: 190 });
  });

  test("HTTP status decides when the code is unknown or missing", async () => {
    graph.next({ kind: "error", httpStatus: 503, rawBody: "<html>bad gateway</html>" });
    expect(await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toMatchObject({ ok: false, kind: "transient", httpStatus: 503 });
    graph.next({ kind: "error", httpStatus: 429, rawBody: "{}", headers: { "retry-after": new Date(Date.now() + 5000).toUTCString() } });
    const r = await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }));
    expect(r).toMatchObject({ ok: false, kind: "transient", httpStatus: 429 });
    expect(!r.ok && r.retryAfterMs).toBeGreaterThan(3000);
    graph.next(metaError(400, 999999));
    expect(await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toMatchObject({ ok: false, kind: "permanent", code: 999999 });
    graph.next(metaError(500, 999999));
    expect(await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toMatchObject({ ok: false, kind: "transient", code: 999999 });
  });

  test("no answer before the timeout: unknown (Meta may have it)", async () => {
    graph.next({ kind: "hang" });
    const started = Date.now();
    const r = await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }));
    expect(r).toMatchObject({ ok: false, kind: "unknown" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(graph.requests).toHaveLength(1);
  });

  test("connection cut after the request arrived: unknown", async () => {
    graph.next({ kind: "destroy" });
    expect(await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toMatchObject({ ok: false, kind: "unknown" });
  });

  test("connection refused (nothing sent): transient", async () => {
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const c = new CloudApiClient({ baseUrl: `http://127.0.0.1:${port}`, version: "v23.0", timeoutMs: 1000 });
    try {
      expect(await c.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "x" } }))).toMatchObject({ ok: false, kind: "transient", networkError: "ECONNREFUSED" });
    } finally {
      c.close();
    }
  });

  test("the result never carries the token or the message text", async () => {
    graph.next(metaError(400, 131008));
    const r = await client.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "secret words" } }));
    expect(JSON.stringify(r)).not.toContain(TOKEN);
    expect(JSON.stringify(r)).not.toContain("secret words");
  });
});

describe("error table", () => {
  test.each([
    [130429, "transient"], [131056, "transient"], [131000, "transient"], [131016, "transient"], [2, "transient"], [133004, "transient"],
    [131057, "transient"], [4, "transient"], [80007, "transient"],
    [131026, "permanent"], [131047, "permanent"], [132000, "permanent"], [132001, "permanent"], [190, "permanent"], [0, "permanent"],
    [3, "permanent"], [10, "permanent"], [200, "permanent"], [250, "permanent"], [299, "permanent"], [100, "permanent"], [131008, "permanent"],
    [131009, "permanent"], [131021, "permanent"], [131051, "permanent"], [131052, "permanent"], [131053, "permanent"], [132005, "permanent"],
    [132007, "permanent"], [132012, "permanent"], [132015, "permanent"], [132016, "permanent"], [131031, "permanent"], [368, "permanent"],
    [130497, "permanent"], [131042, "permanent"], [131045, "permanent"], [131064, "permanent"], [131048, "permanent"], [131049, "permanent"],
    [131050, "permanent"], [130403, "permanent"], [130472, "permanent"],
  ])("code %i is %s, whatever the HTTP status", (code, kind) => {
    expect(classifyMetaError(code, 400).kind).toBe(kind);
    expect(classifyMetaError(code, 500).kind).toBe(kind);
    expect(META_ERROR_CLASSES.has(code)).toBe(true);
  });
  test("131056 is flagged as the pair rate", () => {
    expect(classifyMetaError(131056, 400).pairRate).toBe(true);
  });
  test("Retry-After: seconds or an HTTP date", () => {
    expect(parseRetryAfter("7")).toBe(7000);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 10)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(10_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe("keep-alive sockets", () => {
  // A server that closes idle connections after 2 s and says so (`Keep-Alive: timeout=2`, as Node servers do).
  // The client must drop an idle socket before the server does: a request written onto a socket the server is
  // closing fails after it left (ECONNRESET), an `unknown` outcome that is retried and may repeat the message.
  test("an idle socket is dropped before the server's announced keep-alive timeout, then a new one is used", async () => {
    let connections = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ messaging_product: "whatsapp", contacts: [{ input: "+14155550123", wa_id: "14155550123" }], messages: [{ id: `wamid.ka${connections}` }] }));
      });
    });
    server.keepAliveTimeout = 2_000;
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const c = new CloudApiClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, version: "v23.0", timeoutMs: 2_000 });
    try {
      const send = () => c.sendMessage(PNID, TOKEN, body({ type: "text", text: { body: "hi" } }));
      expect((await send()).ok).toBe(true);
      expect((await send()).ok).toBe(true);
      expect(connections).toBe(1); // reused while fresh
      // past the client's limit (the announced 2 s less 1 s), short of the server's own 2 s
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await send()).ok).toBe(true);
      expect(connections).toBe(2);
    } finally {
      c.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
