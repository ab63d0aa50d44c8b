import { recordScenario } from "../chaos/report";
import { contact, envelope, messages } from "../helpers/payloads";
import { postSigned } from "../helpers/signed";
import type { MessageHandler } from "../../src/conversation/router";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Odd but legal input through the whole pipeline (webhook → queue → worker → reply): unicode, emoji, right-to-left
 * text, 4,096-character messages, unknown message types, and updates for a phone number id that is no tenant's.
 * Each is accepted (200), stored or dropped as documented, never crashes a worker (no failed job), and a reply goes
 * out where one is due (the echo handler answers every text, with its own text capped to WhatsApp's 4,096).
 */
let sys: TestSystem;
const capEcho: MessageHandler = {
  name: "cap-echo",
  async handle({ message }) {
    const body = (message as { text?: { body?: string } }).text?.body;
    if (typeof body !== "string") return null;
    return { replies: [{ type: "text", text: { body: `echo: ${body}`.slice(0, 4096) } }] };
  },
};

beforeAll(async () => {
  sys = await startTestSystem({ handlers: [capEcho], env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
}, 60_000);
afterAll(async () => {
  await sys?.close();
}, 60_000);

const TEXTS: Record<string, string> = {
  emoji: "👩‍👩‍👧‍👦 🏳️‍🌈 🇬🇧 ❤️‍🔥 1️⃣ 🫶🏽",
  arabic: "مرحبا، أريد رمز التحقق من فضلك",
  hebrew: "שלום, אני צריך קוד",
  bidiOverride: "\u202Eabc\u202C and \u2066isolated\u2069 \u200F",
  combining: "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗ ̨̠̪̰̩̦͒ͮ͛ṯ̈́̈́ͩ̑e̠͙͑x͎̓̉t",
  astral: "𝕳𝖊𝖑𝖑𝖔 𠜎𠜱 \u{10FFFD}",
  nulAndControls: "before\u0000after\u0007\u001b[31mred",
  cjk: "验证码在哪里？確認コード",
  max4096: "x".repeat(4090) + "😀😀😀", // 4,096 UTF-16 code units
  over4096: "y".repeat(5000),
};

describe("odd but legal input through the pipeline", () => {
  it("unicode, emoji, right-to-left, control characters and 4,096+ character texts are stored intact and answered", async () => {
    const entries = Object.entries(TEXTS);
    for (const [i, [, text]] of entries.entries()) await sys.sandbox.injectInbound({ from: `1415555020${i}`, text });
    for (const [i, [name, text]] of entries.entries()) {
      const digits = `1415555020${i}`;
      const reply = await waitFor(() => sys.sandbox.conversation(digits).find((m) => m.direction === "outbound"), 15_000);
      expect([name, reply.text]).toEqual([name, `echo: ${text.replace(/\u0000/g, "")}`.slice(0, 4096)]);
      const stored = await sys.core.prisma.message.findFirstOrThrow({ where: { direction: "inbound", contact: { waId: digits } } });
      // PostgreSQL text cannot hold U+0000: stored without it, everything else intact
      expect([name, (stored.payload as { text?: { body?: string } }).text?.body]).toEqual([name, text.replace(/\u0000/g, "")]);
    }
    expect(await sys.core.queues.inbound.getJobCountByTypes("failed")).toBe(0);
  });

  it("unknown and unsupported message types are stored with their type and data, and need no reply", async () => {
    const from = "14155550220";
    const sent = [messages.unknownType(from), messages.unsupported(from), messages.reaction(from, "👍"), messages.system(from), messages.order(from), { ...messages.text(from, "t"), type: "future_type_v99", future_type_v99: { nested: { deep: [1, 2, 3] } } }];
    const res = await postSigned(sys.http.url, envelope({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact(from)], messages: sent }), sys.config.WHATSAPP_APP_SECRET);
    expect(res.status).toBe(200);
    // by wamid: the `system` message (user_changed_number) moves the contact to its new number
    const wamids = sent.map((m) => m.id);
    await waitFor(async () => (await sys.core.prisma.message.count({ where: { direction: "inbound", wamid: { in: wamids } } })) === sent.length, 15_000);
    const rows = await sys.core.prisma.message.findMany({ where: { direction: "inbound", wamid: { in: wamids } } });
    const types = rows.map((r) => (r.payload as { type?: string }).type).sort();
    expect(types).toEqual(sent.map((m) => m.type).sort());
    expect(rows.find((r) => (r.payload as { type?: string }).type === "hologram")!.payload).toMatchObject({ hologram: { depth: 3 } });
    expect(await sys.core.queues.inbound.getJobCountByTypes("failed")).toBe(0);
    // and the customer is still served: a text afterwards gets its answer
    await sys.sandbox.injectInbound({ from: "14155550221", text: "still there?" });
    await waitFor(() => sys.sandbox.conversation("14155550221").some((m) => m.direction === "outbound" && m.text === "echo: still there?"), 15_000);
  });

  it("messages and statuses for a phone number id that is no tenant's are accepted (200), dropped, and crash nothing", async () => {
    const stranger = "14155550230";
    const body = envelope(
      { phoneNumberId: "987650000000001", contacts: [contact(stranger)], messages: [messages.text(stranger, "hello?"), messages.unknownType(stranger)] },
      { phoneNumberId: "987650000000002", statuses: [{ id: "wamid.unknown", status: "delivered", timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: stranger }] },
    );
    const res = await postSigned(sys.http.url, body, sys.config.WHATSAPP_APP_SECRET);
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(await sys.core.prisma.contact.count({ where: { waId: stranger } })).toBe(0);
    expect(await sys.core.queues.inbound.getJobCountByTypes("failed")).toBe(0);
    // the known tenant is still served
    await sys.sandbox.injectInbound({ from: "14155550231", text: "and me?" });
    await waitFor(() => sys.sandbox.conversation("14155550231").some((m) => m.direction === "outbound"), 15_000);
    recordScenario({
      id: "A7-graceful-input",
      title: "Unicode, 4,096-character texts, unknown types, unknown numbers",
      section: "attacks",
      figures: { texts: Object.keys(TEXTS).length, unknownTypes: 6, unknownNumberUpdates: 3, failedJobs: 0 },
      notes:
        "Emoji sequences, Arabic and Hebrew, bidi overrides, combining marks, astral characters, NUL and escape characters, CJK, a 4,096-character " +
        "and a 5,000-character text: each stored (NUL dropped: PostgreSQL text cannot hold it) and answered; unknown and unsupported message types stored " +
        "with their data; updates for a number no tenant has answered 200 and dropped; no job failed.",
    });
  });
});
