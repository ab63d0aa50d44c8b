import request from "supertest";
import { storedInbound } from "../../src/conversation/stored-message";
import { redactCodes } from "../../src/otp/codes";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Codes typed into the chat are never stored in clear (issue 15, item 11), whichever branch takes them: a code with
 * no pending verification, a step-up code (which the chat never approves), a wrong code, the right one, a code
 * inside a sentence, a number a flow step asked for. The messages table and the console's conversation view (as a
 * read-scope key) hold `[code]` instead; the flow engine still gets the real answer.
 */
let sys: TestSystem;
const logs: string[] = [];
/** `code` standing on its own in `text` (not a piece of a longer number, id or timestamp that happens to hold it) */
const holds = (text: string, code: string) => new RegExp(`(?<![0-9A-Za-z])${code.replace(/[^0-9]/g, "\\D{1,3}")}(?![0-9A-Za-z])`).test(text);
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const say = (digits: string, text: string) => sys.sandbox.injectInbound({ from: digits, text });
const botTexts = (digits: string) => sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound").map((m) => m.text ?? "");
/** The inbound rows' stored payloads once `n` inbound messages of this contact are handled (their replies written). */
const stored = async (digits: string, n: number, replies: number) => {
  await waitFor(() => botTexts(digits).length >= replies);
  return waitFor(async () => {
    const rows = await sys.core.prisma.message.findMany({ where: { tenantId: sys.tenantId, direction: "inbound", contact: { waId: digits } }, orderBy: { seq: "asc" } });
    return rows.length >= n && rows.map((r) => JSON.stringify(r.payload));
  });
};

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5", LOG_LEVEL: "debug" }, captureLogs: logs });
}, 60_000);
afterAll(async () => {
  await sys?.close();
}, 60_000);

describe("what looks like a code is redacted from stored texts", () => {
  it("redactCodes: codes alone, spaced, dashed, inside sentences, in other scripts; ordinary text is kept", () => {
    expect(redactCodes("482913")).toBe("[code]");
    expect(holds('{"body":"my code is 313 243"}', "313 243")).toBe(true);
    expect(holds('{"body":"482913"}', "482913")).toBe(true);
    expect(holds('"time":1765154829130', "482913")).toBe(false);
    expect(redactCodes("my code is 123 456")).toBe("my code is [code]");
    expect(redactCodes("1-2-3-4-5-6 thanks")).toBe("[code] thanks");
    expect(redactCodes("code: ١٢٣٤٥٦")).toBe("code: [code]");
    expect(redactCodes("PIN 0000 and 12345678")).toBe("PIN [code] and [code]");
    expect(redactCodes("hello, I need help with 2 things")).toBe("hello, I need help with 2 things");
    const image = storedInbound({ id: "wamid.1", from: "1", timestamp: "1", type: "image", image: { id: "m1", caption: "here 654321" } } as never);
    expect(image).toMatchObject({ image: { id: "m1", caption: "here [code]" }, redacted: true });
    const plain = { id: "wamid.2", from: "1", timestamp: "1", type: "text", text: { body: "hi" } };
    expect(storedInbound(plain as never)).toBe(plain);
  });
});

describe("codes typed into the chat, in every branch", () => {
  const CUSTOMER = "14155550411";
  const ADMIN_NUMBER = "447911123411";
  const FLOW_CUSTOMER = "14155550412";
  const typed: string[] = [];

  it("a code with no pending verification", async () => {
    await say(CUSTOMER, "hello");
    await say(CUSTOMER, "482913");
    typed.push("482913");
    const rows = await stored(CUSTOMER, 2, 2);
    expect(rows[1]).toContain("[code]");
    expect(rows[1]).not.toContain("482913");
  });

  it("a wrong code, a code inside a sentence, then the right code of a pending verification", async () => {
    const v = await api().post("/v1/verifications").set(root()).send({ to: `+${CUSTOMER}` });
    expect(v.status).toBe(201);
    const code = await waitFor(() => latestCode(sys.sandbox, CUSTOMER));
    const wrong = String((Number(code) + 1) % 10 ** code.length).padStart(code.length, "0");
    const spaced = `${code.slice(0, 3)} ${code.slice(3)}`;
    typed.push(code, wrong, spaced);
    await say(CUSTOMER, wrong);
    await waitFor(() => botTexts(CUSTOMER).length >= 4); // greeting ×2, the code, "wrong code"
    await say(CUSTOMER, `my code is ${spaced}`);
    await waitFor(() => botTexts(CUSTOMER).length >= 5);
    await say(CUSTOMER, code);
    await waitFor(async () => (await api().get(`/v1/verifications/${v.body.id}`).set(root())).body.status === "approved");
    const rows = await stored(CUSTOMER, 5, 6);
    // the checked ones are stored wholly redacted ("[redacted]"), the sentence with its code replaced
    for (const r of rows.slice(2)) expect(r).toMatch(/\[code\]|\[redacted\]/);
    expect(rows[3]).toContain("my code is [code]");
    for (const r of rows) for (const c of [code, wrong, spaced, "482913"]) expect(r).not.toContain(c);
  });

  it("a step-up code typed into the chat (it approves nothing there, and is not kept)", async () => {
    expect((await api().put(`/admin/tenants/${sys.tenantId}/admin-number`).set(root()).send({ number: `+${ADMIN_NUMBER}` })).status).toBe(200);
    const key = await api().post(`/admin/tenants/${sys.tenantId}/api-keys`).set(root()).send({ scopes: ["admin"] });
    const held = await api().put(`/admin/tenants/${sys.tenantId}/events`).set({ Authorization: `Bearer ${key.body.key}` }).send({ url: "https://hooks.example.invalid/redaction" });
    expect(held.status).toBe(202);
    const code = await waitFor(() => latestCode(sys.sandbox, ADMIN_NUMBER));
    typed.push(code);
    await say(ADMIN_NUMBER, code);
    const rows = await stored(ADMIN_NUMBER, 1, 2);
    expect(rows[0]).toContain("[code]");
    expect(rows[0]).not.toContain(code);
    // still held: the chat did not confirm it
    expect((await api().get(`/admin/step-ups/${held.body.stepUp.id}`).set(root())).body.status).toBe("pending");
  });

  it("a number a flow step waits for: the engine gets it, the stored message does not", async () => {
    const flow = {
      name: "order",
      triggers: [{ type: "keyword", keywords: ["order-77"] }],
      steps: [
        { id: "ask", type: "ask", text: "Your order number?", input: { type: "digits", min: 4, max: 12 }, save: "order", next: "done" },
        { id: "done", type: "end", text: "Order {{order}} noted." },
      ],
    };
    expect((await api().put("/admin/flows/order").set(root()).send(flow)).status).toBe(201);
    await say(FLOW_CUSTOMER, "order-77");
    await waitFor(() => botTexts(FLOW_CUSTOMER).includes("Your order number?"));
    await say(FLOW_CUSTOMER, "9876 5432");
    await waitFor(() => botTexts(FLOW_CUSTOMER).includes("Order 98765432 noted."));
    const rows = await stored(FLOW_CUSTOMER, 2, 2);
    expect(rows[1]).toContain("[code]");
    expect(rows[1]).not.toMatch(/9876|5432/);
  });

  it("the messages table and the console's conversation view (read scope) hold none of the typed codes", async () => {
    const dump = await sys.core.prisma.$queryRaw<{ t: string }[]>`SELECT payload::text AS t FROM messages WHERE direction = 'inbound'`;
    const all = dump.map((r) => r.t).join("\n");
    expect(all).toContain("[code]");
    for (const c of typed) expect(holds(all, c)).toBe(false);

    const key = await api().post(`/admin/tenants/${sys.tenantId}/api-keys`).set(root()).send({ scopes: ["read"] });
    const agent = request.agent(sys.http.url);
    expect((await agent.post("/console/login").type("form").send({ key: key.body.key })).status).toBe(303);
    const view = await agent.get("/console/api/conversations?limit=50");
    expect(view.status).toBe(200);
    const previews = (view.body.conversations as { messages: { direction: string; preview: string }[] }[])
      .flatMap((c) => c.messages.filter((m) => m.direction === "inbound").map((m) => m.preview));
    expect(previews).toContain("my code is [code]");
    expect(previews).toContain("[code]");
    const shown = JSON.stringify(view.body);
    for (const c of typed) expect(holds(shown, c)).toBe(false);
  });

  it("nor do the debug logs, nor anything the deployment keeps in Redis (job data is encrypted)", async () => {
    expect(logs.length).toBeGreaterThan(20);
    const logText = logs.join("\n");
    for (const c of typed) expect(holds(logText, c)).toBe(false);
    const redis = sys.core.redis;
    const values: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${sys.config.QUEUE_PREFIX}*`, "COUNT", 500);
      cursor = next;
      for (const k of keys) {
        const type = await redis.type(k);
        if (type === "string") values.push((await redis.get(k)) ?? "");
        else if (type === "hash") values.push(JSON.stringify(await redis.hgetall(k)));
        else if (type === "list") values.push(JSON.stringify(await redis.lrange(k, 0, -1)));
        else if (type === "zset") values.push(JSON.stringify(await redis.zrange(k, 0, -1)));
        else if (type === "set") values.push(JSON.stringify(await redis.smembers(k)));
        else if (type === "stream") values.push(JSON.stringify(await redis.xrange(k, "-", "+")));
      }
    } while (cursor !== "0");
    expect(values.length).toBeGreaterThan(0);
    const all = values.join("\n");
    for (const c of typed) expect(holds(all, c)).toBe(false);
  });
});
