import { matchTrigger, type LiveFlow, type TriggerInput } from "../../src/flows/triggers";
import { flow } from "./helpers";

function live(name: string, triggers: unknown[]): LiveFlow {
  return { name, version: 1, definition: flow({ name, triggers, steps: [{ id: "e", type: "end" }] }) };
}
const msg = (text: string | null, extra: Partial<TriggerInput> = {}): TriggerInput => ({ text, replyId: null, isNewContact: false, ...extra });
const hit = (flows: LiveFlow[], input: TriggerInput) => matchTrigger(flows, input)?.name ?? null;

describe("triggers: keyword exact (default)", () => {
  const flows = [live("ping", [{ type: "keyword", keywords: ["ping-42", "Hola Ping"] }])];
  it("matches the whole message, case- and surrounding-whitespace-insensitive", () => {
    expect(hit(flows, msg("ping-42"))).toBe("ping");
    expect(hit(flows, msg("  PING-42\n"))).toBe("ping");
    expect(hit(flows, msg("hola ping"))).toBe("ping");
  });
  it("does not match a message that only contains or starts with the keyword", () => {
    expect(hit(flows, msg("ping-42 please"))).toBeNull();
    expect(hit(flows, msg("say ping-42"))).toBeNull();
    expect(hit(flows, msg("ping-4"))).toBeNull();
    expect(hit(flows, msg(""))).toBeNull();
    expect(hit(flows, msg(null))).toBeNull();
  });
  it("keywords with surrounding spaces or capitals in the definition still match", () => {
    expect(hit([live("k", [{ type: "keyword", keywords: ["  MENU "] }])], msg("menu"))).toBe("k");
  });
  it("compares Unicode in NFC form", () => {
    const f = [live("k", [{ type: "keyword", keywords: ["café"] }])];
    expect(hit(f, msg("cafe\u0301"))).toBe("k");
    expect(hit(f, msg("CAFÉ"))).toBe("k");
  });
});

describe("triggers: keyword contains / starts_with", () => {
  it("contains matches anywhere", () => {
    const flows = [live("help", [{ type: "keyword", keywords: ["help"], match: "contains" }])];
    expect(hit(flows, msg("I need HELP now"))).toBe("help");
    expect(hit(flows, msg("helpful"))).toBe("help");
    expect(hit(flows, msg("hel p"))).toBeNull();
  });
  it("starts_with matches a prefix only", () => {
    const flows = [live("order", [{ type: "keyword", keywords: ["order"], match: "starts_with" }])];
    expect(hit(flows, msg("  Order 1234"))).toBe("order");
    expect(hit(flows, msg("my order 1234"))).toBeNull();
  });
});

describe("triggers: per-locale keyword lists", () => {
  const flows = [live("menu", [{ type: "keyword", keywords: { en_US: ["menu"], es: ["menú", "carta"], pt_BR: ["cardápio"] } }])];
  it("a keyword of any locale's list matches", () => {
    expect(hit(flows, msg("menu"))).toBe("menu");
    expect(hit(flows, msg("Menú"))).toBe("menu");
    expect(hit(flows, msg("CARTA"))).toBe("menu");
    expect(hit(flows, msg("cardápio"))).toBe("menu");
    expect(hit(flows, msg("cardapio"))).toBeNull();
  });
});

describe("triggers: pattern", () => {
  const flows = [live("track", [{ type: "pattern", pattern: "^track\\s+#?(\\d{4,})$" }])];
  it("matches a case-insensitive regular expression", () => {
    expect(hit(flows, msg("TRACK #12345"))).toBe("track");
    expect(hit(flows, msg("track 12"))).toBeNull();
  });
  it("matches repeatedly (no sticky/global state between calls)", () => {
    const f = [live("p", [{ type: "pattern", pattern: "abc" }])];
    for (let i = 0; i < 3; i++) expect(hit(f, msg("xxabcxx"))).toBe("p");
  });
});

describe("triggers: button ids", () => {
  const flows = [live("offer", [{ type: "button", ids: ["offer_yes", "offer_more"] }])];
  it("matches a reply id", () => {
    expect(hit(flows, msg(null, { replyId: "offer_more" }))).toBe("offer");
    expect(hit(flows, msg("Yes", { replyId: "offer_yes" }))).toBe("offer");
  });
  it("ids are exact (case-sensitive) and text equal to an id does not match", () => {
    expect(hit(flows, msg(null, { replyId: "OFFER_YES" }))).toBeNull();
    expect(hit(flows, msg("offer_yes"))).toBeNull();
  });
});

describe("triggers: new_contact", () => {
  const flows = [live("welcome", [{ type: "new_contact" }])];
  it("matches only a new contact's message", () => {
    expect(hit(flows, msg("hi", { isNewContact: true }))).toBe("welcome");
    expect(hit(flows, msg(null, { isNewContact: true }))).toBe("welcome");
    expect(hit(flows, msg("hi"))).toBeNull();
  });
});

describe("triggers: api-only flows and empty input", () => {
  it("an api trigger never matches a message", () => {
    const flows = [live("api-only", [{ type: "api" }])];
    expect(hit(flows, msg("api-only", { isNewContact: true, replyId: "api-only" }))).toBeNull();
  });
  it("no flows, or flows without triggers, match nothing", () => {
    expect(hit([], msg("hi", { isNewContact: true }))).toBeNull();
    expect(hit([live("none", [])], msg("hi", { isNewContact: true }))).toBeNull();
  });
});

describe("triggers: precedence", () => {
  const flows = [
    live("a-welcome", [{ type: "new_contact" }]),
    live("b-pattern", [{ type: "pattern", pattern: "hello" }]),
    live("c-keyword", [{ type: "keyword", keywords: ["hello"] }]),
    live("d-button", [{ type: "button", ids: ["hello"] }]),
  ];
  it("button > keyword > pattern > new_contact, regardless of name order", () => {
    const all = { replyId: "hello", isNewContact: true };
    expect(hit(flows, msg("hello", all))).toBe("d-button");
    expect(hit(flows, msg("hello", { isNewContact: true }))).toBe("c-keyword");
    expect(hit(flows, msg("hello there", { isNewContact: true }))).toBe("b-pattern");
    expect(hit(flows, msg("bye", { isNewContact: true }))).toBe("a-welcome");
    expect(hit(flows, msg("bye"))).toBeNull();
  });
  it("a reply id that no button trigger knows falls back to the text", () => {
    expect(hit(flows, msg("hello", { replyId: "unknown" }))).toBe("c-keyword");
  });
  it("within one kind, the first flow by name wins, whatever the input order", () => {
    const x = live("zeta", [{ type: "keyword", keywords: ["go"] }]);
    const y = live("alpha", [{ type: "keyword", keywords: ["go"] }]);
    expect(hit([x, y], msg("go"))).toBe("alpha");
    expect(hit([y, x], msg("go"))).toBe("alpha");
  });
  it("one flow with several triggers matches through any of them", () => {
    const f = [live("multi", [{ type: "keyword", keywords: ["start"] }, { type: "pattern", pattern: "^begin" }, { type: "button", ids: ["go"] }])];
    expect(hit(f, msg("start"))).toBe("multi");
    expect(hit(f, msg("beginning"))).toBe("multi");
    expect(hit(f, msg(null, { replyId: "go" }))).toBe("multi");
  });
  it("does not reorder the caller's array", () => {
    const list = [live("zeta", []), live("alpha", [])];
    matchTrigger(list, msg("x"));
    expect(list.map((f) => f.name)).toEqual(["zeta", "alpha"]);
  });
});
