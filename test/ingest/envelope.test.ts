import { envelopeSchema, extractUpdates } from "../../src/ingest/envelope";
import { contact, envelope, messages, statuses, wamid } from "../helpers/payloads";

const PNID = "106540352242922";
const extract = (body: unknown) => extractUpdates(envelopeSchema.parse(body), 1_700_000_000_000);

describe("envelope parsing", () => {
  it("keeps every message type Meta sends, known or not, with the raw fields", () => {
    const all = Object.entries(messages)
      .filter(([k]) => k !== "usernameOnly")
      .map(([, make]) => (make as (from: string) => Record<string, unknown>)("16505551234"));
    const out = extract(envelope({ phoneNumberId: PNID, contacts: [contact("16505551234")], messages: all }));
    expect(out.malformed).toEqual([]);
    expect(out.messages.map((m) => m.message.type)).toEqual(all.map((m) => m.type));
    const unknown = out.messages.find((m) => m.message.type === "hologram")!;
    expect(unknown.message).toMatchObject({ hologram: { depth: 3 } });
    const button = out.messages.find((m) => m.message.type === "button")!;
    expect(button.message).toMatchObject({ button: { payload: "DID_NOT_REQUEST_CODE" } });
    expect(out.messages.every((m) => m.contactKey === "16505551234" && m.contact?.profile?.name === "Sheena Nelson")).toBe(true);
  });

  it("orders messages by array position and keys username-only senders by their user id", () => {
    const m1 = messages.text("447700900123", "one");
    const m2 = messages.usernameOnly("GB.13491208655302741918", "two");
    const m3 = messages.text("447700900123", "three");
    const out = extract(envelope({ phoneNumberId: PNID, contacts: [{ profile: { name: "A", username: "@a" }, user_id: "GB.13491208655302741918" }], messages: [m1, m2, m3] }));
    expect(out.messages.map((m) => m.contactKey)).toEqual(["447700900123", "GB.13491208655302741918", "447700900123"]);
    expect(out.messages.map((m) => m.order)).toEqual([...out.messages.map((m) => m.order)].sort((a, b) => a - b));
    expect(new Set(out.messages.map((m) => m.order)).size).toBe(3);
    expect(out.messages[1]!.contact?.user_id).toBe("GB.13491208655302741918");
  });

  it("walks every entry and change of a batch, and statuses with their errors", () => {
    const id = wamid();
    const body = envelope(
      { phoneNumberId: PNID, messages: [messages.text("111")], contacts: [contact("111")] },
      { phoneNumberId: "999", statuses: [statuses.of(id, "sent", "222"), statuses.failed(id, "222", 131026)] },
    );
    const out = extract(body);
    expect(out.messages).toHaveLength(1);
    expect(out.statuses.map((s) => [s.phoneNumberId, s.status.status])).toEqual([["999", "sent"], ["999", "failed"]]);
    expect(out.statuses[1]!.status.errors?.[0]?.code).toBe(131026);
  });

  it("reports elements without an id or sender instead of failing the batch", () => {
    const body = envelope({ phoneNumberId: PNID, messages: [{ type: "text" }, { id: wamid(), type: "text" }, messages.text("1")], statuses: [{ status: "sent" }] });
    const out = extract(body);
    expect(out.messages).toHaveLength(1);
    expect(out.malformed).toHaveLength(3);
  });

  it("turns account fields into account updates routed by the WABA id, and reports other fields without jobs", () => {
    const value = { event: "APPROVED", message_template_name: "verification_code" };
    const body = {
      object: "whatsapp_business_account",
      entry: [{ id: "1020", changes: [{ field: "message_template_status_update", value }, { field: "security", value: { x: 1 } }] }],
    };
    const out = extract(body);
    expect(out.account).toEqual([expect.objectContaining({ kind: "account", wabaId: "1020", field: "message_template_status_update", value })]);
    expect(out.other).toEqual([{ field: "security", phoneNumberId: undefined }]);
    const noId = extract({ object: "whatsapp_business_account", entry: [{ changes: [{ field: "phone_number_quality_update", value: { event: "UPGRADE" } }] }] });
    expect(noId.account).toEqual([]);
    expect(noId.malformed).toHaveLength(1);
    const withErrors = extract(envelope({ phoneNumberId: PNID, errors: [{ code: 131000, title: "Something went wrong" }] }));
    expect(withErrors.other).toEqual([{ field: "messages.errors", phoneNumberId: PNID }]);
  });
});
