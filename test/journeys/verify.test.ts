import { ManualClock } from "../../src/shared/clock";
import type { TestSystem } from "../helpers/system";
import { Chat, LANGUAGES, numberFor, re, startJourneys, wrongCode, type PerLocale } from "./harness";

/** The built-in journeys customers start themselves: verify, menu and help-codes (each in the three languages); and the chat's rules. */
let sys: TestSystem;
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  ({ sys } = await startJourneys({ clock }));
});
afterAll(async () => {
  await sys.close();
});

const contact = (digits: string) => sys.core.prisma.contact.findFirstOrThrow({ where: { waId: digits } });

describe("verify", () => {
  it.each([
    { lang: "Spanish", digits: "34612345001", keyword: "verificar", intro: /Vamos a confirmar que \+34612345001 es tu número/, send: "verify_send", done: /Listo: \+34612345001 está verificado/ },
    { lang: "Brazilian Portuguese", digits: "5511912345001", keyword: "verificar meu número", intro: /Vamos confirmar que \+5511912345001 é o seu número/, send: "verify_send", done: /Pronto: \+5511912345001 está verificado/ },
    { lang: "English (US)", digits: "14155550301", keyword: "Verify my number", intro: /Let's confirm that \+14155550301 is your number/, send: "verify_send", done: /Done: \+14155550301 is verified/ },
  ])("$lang: a code, a wrong try, the right code, and the contact is verified", async ({ digits, keyword, intro, done }) => {
    const chat = new Chat(sys, digits);
    await chat.say(keyword);
    const first = await chat.expectBot(intro);
    expect(Chat.ids(first)).toEqual(["verify_send", "verify_later"]);
    await chat.tap("verify_send");
    const code = await chat.code();
    await chat.expectBot(/6 (digits|dígitos)/);
    await chat.say(wrongCode(code));
    await chat.expectBot(/(not right|no es correcto|não está certo).*4/);
    await chat.say(code);
    await chat.expectBot(done);
    const v = await sys.core.prisma.verification.findFirstOrThrow({ where: { to: `+${digits}` }, orderBy: { createdAt: "desc" } });
    expect(v).toMatchObject({ status: "approved", purpose: "registration" });
    // mark_verified may wait for the message's own transaction to let the contact row go
    for (let i = 0; i < 100 && !(await contact(digits)).verifiedAt; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await contact(digits)).verifiedAt).not.toBeNull();
    const session = await sys.core.prisma.session.findFirstOrThrow({ where: { contact: { waId: digits } } });
    expect(session.flow).toBeNull();
  });

  it("a code that is no longer valid offers a new one, which works", async () => {
    const chat = new Chat(sys, "14155550302");
    await chat.say("verify");
    await chat.expectBot(/Let's confirm/);
    await chat.tap("verify_send");
    const first = await chat.code();
    await chat.expectBot(/Type the 6 digits/);
    clock.advance(11 * 60_000); // past the code's life, within the 30-minute session
    await chat.say(first);
    const offer = await chat.expectBot(/no longer valid/);
    expect(Chat.ids(offer)).toEqual(["verify_again", "verify_stop"]);
    await chat.tap("verify_again");
    const second = await chat.code(first);
    await chat.expectBot(/Type the 6 digits/);
    await chat.say(second);
    await chat.expectBot(/is verified/);
  });

  it("too many wrong codes lock the check and say what to do next", async () => {
    const chat = new Chat(sys, "14155550303");
    await chat.say("verify");
    await chat.expectBot(/Let's confirm/);
    await chat.tap("verify_send");
    const code = await chat.code();
    await chat.expectBot(/Type the 6 digits/);
    for (let left = 4; left >= 1; left--) {
      await chat.say(wrongCode(code));
      await chat.expectBot(new RegExp(`not right\\. ${left} left`));
    }
    await chat.say(wrongCode(code));
    await chat.expectBot(/Too many wrong codes.*write \*verify\* to start again/s);
  });

  it("wrong input: text that is not a code does not use up a try; an unknown reply shows the buttons again", async () => {
    const chat = new Chat(sys, "14155550304");
    await chat.say("verify");
    await chat.expectBot(/Let's confirm/);
    await chat.say("maybe?");
    const again = await chat.expectBot(/Let's confirm/);
    expect(Chat.ids(again)).toEqual(["verify_send", "verify_later"]);
    await chat.say("send the code"); // a button's title, typed
    const code = await chat.code();
    await chat.expectBot(/Type the 6 digits/);
    await chat.say("I can't find it");
    await chat.expectBot("Please send the code as digits.");
    await chat.say(code);
    await chat.expectBot(/is verified/);
  });

  it("cancel in the middle stops the journey, and nothing is marked", async () => {
    const chat = new Chat(sys, "34612345002");
    await chat.say("verificar");
    await chat.expectBot(/Vamos a confirmar/);
    await chat.tap("verify_send");
    await chat.code();
    await chat.expectBot(/Escribe aquí los 6 dígitos/);
    await chat.say("cancelar");
    await chat.expectBot(/De acuerdo, lo dejamos/);
    const session = await sys.core.prisma.session.findFirstOrThrow({ where: { contact: { waId: "34612345002" } } });
    expect(session.flow).toBeNull();
    expect((await contact("34612345002")).verifiedAt).toBeNull();
  });

  it("an idle journey times out: the next message starts afresh", async () => {
    const chat = new Chat(sys, "5511912345002");
    await chat.say("verificar");
    await chat.expectBot(/Vamos confirmar/);
    clock.advance(31 * 60_000);
    await chat.tap("verify_later"); // too late: the session is over, and this id starts nothing
    await chat.say("menu");
    const menu = await chat.expectBot(/Como posso ajudar/);
    expect(menu.text).not.toMatch(/Sem problemas/);
    expect(chat.outbound().some((m) => /Sem problemas/.test(m.text))).toBe(false);
  });
});

const MENU: PerLocale<{ keyword: string; menu: RegExp; verify: string; again: string; help: RegExp }> = {
  en_US: { keyword: "menu", menu: /How can I help\? Tap \*Options\* and choose/, verify: "Let's confirm that", again: "menú", help: /I'm the verification assistant/ },
  es: { keyword: "menú", menu: /¿En qué te ayudo\? Pulsa \*Opciones\* y elige/, verify: "Vamos a confirmar que", again: "inicio", help: /Soy el asistente de verificación/ },
  pt_BR: { keyword: "início", menu: /Como posso ajudar\? Toque em \*Opções\* e escolha/, verify: "Vamos confirmar que", again: "menu", help: /Sou o assistente de verificação/ },
};

describe.each(LANGUAGES)("menu ($lang)", (l) => {
  const t = MENU[l.locale];
  it("lists the journeys; a row starts its journey, also from inside another one", async () => {
    const chat = new Chat(sys, numberFor(l, 101));
    await chat.say(t.keyword);
    const menu = await chat.expectBot(t.menu);
    expect(Chat.ids(menu)).toEqual(["journey_verify", "journey_help_codes", "journey_change_number", "journey_recover", "journey_pin", "journey_help"]);
    await chat.tap("journey_verify");
    await chat.expectBot(new RegExp(`${re(t.verify)} \\+${chat.digits} `));
    await chat.say(t.again); // the global menu word leaves the running journey
    await chat.expectBot(t.menu);
    await chat.tap("journey_help");
    await chat.expectBot(t.help);
  });
});

const HELP_CODES: PerLocale<{ keyword: string; checklist: (phone: string) => RegExp; onItsWay: (phone: string) => RegExp }> = {
  en_US: { keyword: "I didn't get a code", checklist: (p) => new RegExp(`I have ${re(p)}\\. Does it start with the right country code`), onItsWay: (p) => new RegExp(`A code is on its way to ${re(p)}\\.`) },
  es: { keyword: "no me llega el código", checklist: (p) => new RegExp(`tengo ${re(p)}\\. ¿Empieza por el prefijo de país correcto`), onItsWay: (p) => new RegExp(`Hay un código en camino a ${re(p)}\\.`) },
  pt_BR: { keyword: "não recebi o código", checklist: (p) => new RegExp(`tenho ${re(p)}\\. Ele começa com o código do país certo`), onItsWay: (p) => new RegExp(`Um código está a caminho de ${re(p)}\\.`) },
};

describe.each(LANGUAGES)("help-codes ($lang)", (l) => {
  const t = HELP_CODES[l.locale];
  it("shows the number to check, sends the code again, and the code typed here is accepted", async () => {
    const chat = new Chat(sys, numberFor(l, 111));
    const phone = `+${chat.digits}`;
    await chat.say(t.keyword);
    const list = await chat.expectBot(t.checklist(phone));
    expect(Chat.ids(list)).toEqual(["hc_again", "hc_sms", "hc_more"]);
    await chat.tap("hc_again");
    const code = await chat.code();
    await chat.expectBot(t.onItsWay(phone));
    // the journey is over: the code typed here approves the pending login code
    await chat.say(code);
    await chat.expectBot(/./);
    const v = await sys.core.prisma.verification.findFirstOrThrow({ where: { to: phone } });
    expect(v).toMatchObject({ purpose: "login", status: "approved" });
  });
});

describe("help-codes", () => {
  it("asking again at once: the code was just sent, wait a minute", async () => {
    const chat = new Chat(sys, "34612345003");
    await chat.say("no me llega el código");
    await chat.expectBot(/tengo \+34612345003/);
    await chat.tap("hc_again");
    await chat.code();
    await chat.expectBot(/Hay un código en camino/);
    await chat.say("no recibí el código");
    await chat.expectBot(/tengo \+34612345003/);
    await chat.tap("hc_again");
    await chat.expectBot(/Se envió un código hace un momento/);
  });

  it("another channel: SMS", async () => {
    const chat = new Chat(sys, "5511912345003");
    await chat.say("não recebi o código");
    await chat.expectBot(/tenho \+5511912345003/);
    await chat.tap("hc_sms");
    // either the SMS goes out, or the deployment has no SMS channel and says so
    const m = await chat.expectBot(/Um código está a caminho|Esse canal não está disponível/);
    if (/a caminho/.test(m.text)) {
      const v = await sys.core.prisma.verification.findFirstOrThrow({ where: { to: "+5511912345003" } });
      expect(v.purpose).toBe("login");
    }
  });

  it("why a code came, security tips, and reporting unauthorized access (codes paused, business told)", async () => {
    const chat = new Chat(sys, "14155550307");
    await chat.say("no code");
    await chat.expectBot(/Let's find your code/);
    await chat.tap("hc_more");
    const topics = await chat.expectBot(/What would you like to know/);
    expect(Chat.ids(topics)).toEqual(["hc_why", "hc_tips", "hc_report"]);
    await chat.tap("hc_why");
    await chat.expectBot(/A code is sent whenever someone enters your number/);
    await chat.tap("hc_why_tips");
    const tips = await chat.expectBot(/Keeping your account safe/);
    expect(tips.text).toMatch(/SIM swap/);
    expect(tips.text).toMatch(/voicemail password/);
    expect(tips.text).toMatch(/phishing/);

    await chat.say("security tips");
    await chat.expectBot(/Let's find your code/);
    await chat.tap("hc_more");
    await chat.expectBot(/What would you like to know/);
    await chat.tap("hc_report");
    await chat.expectBot(/Report unauthorized access to your account\?/);
    await chat.tap("hc_report_yes");
    await chat.expectBot(/Reported: our team knows/);
    const events = await sys.core.prisma.auditEvent.findMany({ where: { type: "contact.unauthorized_access_reported" } });
    expect(events.length).toBeGreaterThan(0);
    // new codes to this number are paused
    await chat.say("verify");
    await chat.expectBot(/Let's confirm/);
    await chat.tap("verify_send");
    await chat.expectBot(/Codes to this number are paused/);
  });
});
