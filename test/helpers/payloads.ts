import { randomBytes } from "node:crypto";

/**
 * Cloud API webhook payloads in the shapes Meta documents (webhooks reference, v23–v25), for tests.
 * Each builder returns one element; `envelope()` wraps them as Meta does.
 */
export const wamid = () => `wamid.HBgL${randomBytes(18).toString("base64url")}`;
const ts = (offset = 0) => String(Math.floor(Date.now() / 1000) + offset);

export interface ChangeInput {
  phoneNumberId: string;
  displayPhoneNumber?: string;
  contacts?: unknown[];
  messages?: unknown[];
  statuses?: unknown[];
  errors?: unknown[];
}

export function envelope(...changes: ChangeInput[]) {
  return {
    object: "whatsapp_business_account",
    entry: changes.map((c) => ({
      id: "102290129340398",
      changes: [
        {
          field: "messages",
          value: {
            messaging_product: "whatsapp",
            metadata: { display_phone_number: c.displayPhoneNumber ?? "15550783881", phone_number_id: c.phoneNumberId },
            ...(c.contacts ? { contacts: c.contacts } : {}),
            ...(c.messages ? { messages: c.messages } : {}),
            ...(c.statuses ? { statuses: c.statuses } : {}),
            ...(c.errors ? { errors: c.errors } : {}),
          },
        },
      ],
    })),
  };
}

export const contact = (waId: string, name = "Sheena Nelson", userId?: string) => ({
  profile: { name },
  wa_id: waId,
  ...(userId ? { user_id: userId } : {}),
});

const base = (from: string, type: string, extra: Record<string, unknown>) => ({ from, id: wamid(), timestamp: ts(), type, ...extra });

export const messages = {
  text: (from: string, body = "Hello") => base(from, "text", { text: { body } }),
  buttonReply: (from: string) => base(from, "interactive", { context: { from: "15550783881", id: wamid() }, interactive: { type: "button_reply", button_reply: { id: "yes", title: "Yes" } } }),
  listReply: (from: string) => base(from, "interactive", { interactive: { type: "list_reply", list_reply: { id: "row-1", title: "Login", description: "Log in to the portal" } } }),
  flowReply: (from: string) => base(from, "interactive", { interactive: { type: "nfm_reply", nfm_reply: { name: "flow", body: "Sent", response_json: '{"flow_token":"x"}' } } }),
  templateButton: (from: string, payload = "DID_NOT_REQUEST_CODE") => base(from, "button", { context: { from: "15550783881", id: wamid() }, button: { payload, text: "I didn't request a code" } }),
  image: (from: string) => base(from, "image", { image: { caption: "look", mime_type: "image/jpeg", sha256: "abc", id: "1479537139650973" } }),
  voice: (from: string) => base(from, "audio", { audio: { mime_type: "audio/ogg; codecs=opus", sha256: "abc", id: "1003383421387256", voice: true } }),
  document: (from: string) => base(from, "document", { document: { caption: "bill", filename: "bill.pdf", mime_type: "application/pdf", sha256: "abc", id: "1003383421387257" } }),
  sticker: (from: string) => base(from, "sticker", { sticker: { mime_type: "image/webp", sha256: "abc", id: "1003383421387258", animated: false } }),
  location: (from: string) => base(from, "location", { location: { latitude: 37.483307, longitude: -122.148981, name: "Philz Coffee", address: "101 Forest Ave, Palo Alto, CA 94301" } }),
  contacts: (from: string) => base(from, "contacts", { contacts: [{ name: { formatted_name: "Barbara Johnson", first_name: "Barbara" }, phones: [{ phone: "+1 (940) 555-1234", wa_id: "19405551234", type: "HOME" }] }] }),
  reaction: (from: string, emoji?: string) => base(from, "reaction", { reaction: { message_id: wamid(), ...(emoji ? { emoji } : {}) } }),
  order: (from: string) => base(from, "order", { order: { catalog_id: "123", text: "please", product_items: [{ product_retailer_id: "sku", quantity: 1, item_price: 9.99, currency: "USD" }] } }),
  system: (from: string) => base(from, "system", { system: { body: "User A changed from +1 555 to +1 556", wa_id: "1556", type: "user_changed_number" } }),
  unsupported: (from: string) => base(from, "unsupported", { errors: [{ code: 131051, title: "Message type unknown", message: "Message type unknown", error_data: { details: "Message type is currently not supported." } }] }),
  unknownType: (from: string) => base(from, "hologram", { hologram: { depth: 3 } }),
  /** a sender with a WhatsApp username and no phone number: only the business-scoped user id */
  usernameOnly: (userId: string, body = "hi from a username") => {
    const { from: _from, ...m } = base("", "text", { text: { body } });
    return { ...m, from_user_id: userId };
  },
};

export const statuses = {
  of: (id: string, status: "sent" | "delivered" | "read" | "failed", recipient: string, extra: Record<string, unknown> = {}, offset = 0) => ({
    id,
    status,
    timestamp: ts(offset),
    recipient_id: recipient,
    ...(status === "sent"
      ? { conversation: { id: "CONVERSATION_ID", origin: { type: "authentication" } }, pricing: { billable: true, pricing_model: "PMP", category: "authentication", type: "regular" } }
      : {}),
    ...extra,
  }),
  failed: (id: string, recipient: string, code = 131026, offset = 0) =>
    statuses.of(id, "failed", recipient, {
      errors: [{ code, title: "Message undeliverable", message: "Message undeliverable", error_data: { details: "Message Undeliverable." }, href: "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/" }],
    }, offset),
};
