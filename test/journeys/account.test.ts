import request from "supertest";
import { ManualClock } from "../../src/shared/clock";
import type { RecordingEmailSender } from "../../src/providers/email/recording-sender";
import { latestCode, waitFor, type TestSystem } from "../helpers/system";
import { Chat, LANGUAGES, numberFor, re, startJourneys, wrongCode, type Language, type Locale, type PerLocale } from "./harness";

/** The account journeys: recover, change-number, pin, login-notice and reverify (the last two started by the API), each in the three languages. */
let sys: TestSystem;
let email: RecordingEmailSender;
const clock = new ManualClock(Date.now());
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });

beforeAll(async () => {
  ({ sys, email } = await startJourneys({ clock }));
});
afterAll(async () => {
  await sys.close();
});

const contact = (digits: string) => sys.core.prisma.contact.findFirstOrThrow({ where: { waId: digits } });
async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  return waitFor(async () => {
    const v = await read();
    return ok(v) ? { v } : null;
  }).then((r) => r.v);
}
async function greet(chat: Chat): Promise<void> {
  await chat.say("hi");
  await chat.expectBot(/./); // the greeting: the 24-hour window is open, the contact exists
}
/** pin's texts (flows/pin.yaml) in each language. */
const PIN: PerLocale<{
  keyword: string;
  change: string;
  offer: RegExp;
  choose: RegExp;
  weak: RegExp;
  confirm: RegExp;
  mismatch: RegExp;
  email: RegExp;
  saved: RegExp;
  on: RegExp;
  current: RegExp;
}> = {
  en_US: {
    keyword: "my pin",
    change: "change pin",
    offer: /Two-step verification adds a second lock/,
    choose: /Choose a 6-digit PIN/,
    weak: /too easy to guess/,
    confirm: /Type the same PIN again/,
    mismatch: /The two PINs don't match/,
    email: /add a recovery email\?/,
    saved: /Your PIN is saved: two-step verification is on/,
    on: /Two-step verification is on for/,
    current: /Type your current PIN/,
  },
  es: {
    keyword: "mi pin",
    change: "cambiar pin",
    offer: /La verificación en dos pasos añade un segundo candado/,
    choose: /Elige un PIN de 6 dígitos/,
    weak: /demasiado fácil de adivinar/,
    confirm: /Escribe el mismo PIN otra vez/,
    mismatch: /Los dos PIN no coinciden/,
    email: /añadir un correo de recuperación\?/,
    saved: /PIN guardado: la verificación en dos pasos está activada/,
    on: /La verificación en dos pasos está activada para/,
    current: /Escribe tu PIN actual/,
  },
  pt_BR: {
    keyword: "meu pin",
    change: "trocar pin",
    offer: /A verificação em duas etapas adiciona uma segunda trava/,
    choose: /Escolha um PIN de 6 dígitos/,
    weak: /fácil demais de adivinhar/,
    confirm: /Digite o mesmo PIN de novo/,
    mismatch: /Os dois PINs não são iguais/,
    email: /adicionar um e-mail de recuperação\?/,
    saved: /PIN salvo: a verificação em duas etapas está ativada/,
    on: /A verificação em duas etapas está ativada para/,
    current: /Digite seu PIN atual/,
  },
};
async function setPin(chat: Chat, pin: string, locale: Locale = "en_US"): Promise<void> {
  const t = PIN[locale];
  await chat.say(t.keyword);
  await chat.expectBot(t.offer);
  await chat.tap("pin_setup");
  await chat.expectBot(t.choose);
  await chat.say(pin);
  await chat.expectBot(t.confirm);
  await chat.say(pin);
  await chat.expectBot(t.email);
  await chat.tap("pin_email_skip");
  await chat.expectBot(t.saved);
}

/** recover's texts (flows/recover.yaml) in each language. */
const RECOVER: PerLocale<{ keyword: string; intro: RegExp; code: RegExp; pin: RegExp; wrongPin: RegExp; list: RegExp; revoked: RegExp; advice: RegExp; adviceHas: RegExp[]; bye: RegExp }> = {
  en_US: {
    keyword: "recover my account",
    intro: /Let's secure your account/,
    code: /Type the code I just sent/,
    pin: /Two-step verification is on\. Type your 6-digit PIN/,
    wrongPin: /Wrong PIN\. 4 left/,
    list: /Signed in to your account right now/,
    revoked: /Done: 2 session\(s\) signed out/,
    advice: /Your account is back in your hands/,
    adviceHas: [/ends the intruder's session/, /two-step verification/, /Warn your contacts/, /SIM PIN/],
    bye: /Stay safe/,
  },
  es: {
    keyword: "recuperar mi cuenta",
    intro: /Vamos a proteger tu cuenta/,
    code: /Escribe el código que acabo de enviar/,
    pin: /La verificación en dos pasos está activada\. Escribe tu PIN de 6 dígitos/,
    wrongPin: /PIN incorrecto\. Intentos restantes: 4/,
    list: /Sesiones abiertas en tu cuenta ahora mismo/,
    revoked: /Hecho: 2 sesión\(es\) cerrada\(s\)/,
    advice: /Tu cuenta vuelve a estar en tus manos/,
    adviceHas: [/cierra la sesión del intruso/, /verificación en dos pasos/, /Avisa a tus contactos/, /PIN de la SIM/],
    bye: /¡Cuídate!/,
  },
  pt_BR: {
    keyword: "recuperar minha conta",
    intro: /Vamos proteger sua conta/,
    code: /Digite o código que acabei de enviar/,
    pin: /A verificação em duas etapas está ativada\. Digite seu PIN de 6 dígitos/,
    wrongPin: /PIN incorreto\. Tentativas restantes: 4/,
    list: /Acessos abertos na sua conta agora/,
    revoked: /Feito: 2 acesso\(s\) encerrado\(s\)/,
    advice: /Sua conta está de volta nas suas mãos/,
    adviceHas: [/encerra a sessão do invasor/, /verificação em duas etapas/, /Avise seus contatos/, /PIN do chip/],
    bye: /Fique seguro!/,
  },
};

describe.each(LANGUAGES)("recover ($lang)", (l) => {
  const t = RECOVER[l.locale];
  it("code, PIN, the list of sessions, sign out of all of them, advice", async () => {
    const chat = new Chat(sys, numberFor(l, 201));
    await greet(chat);
    await setPin(chat, "402913", l.locale);
    const c = await contact(chat.digits);
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: `web-${chat.digits}`, device: "Chrome on Windows", location: "Lisbon, PT" } });
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: `app-${chat.digits}`, device: "iPhone app", location: "Austin, US" } });

    await chat.say(t.keyword);
    await chat.expectBot(t.intro);
    await chat.tap("rc_go");
    const code = await chat.code();
    await chat.expectBot(t.code);
    await chat.say(code);
    await chat.expectBot(t.pin);
    await chat.say("111111".replace(/1/g, "5")); // a wrong PIN
    await chat.expectBot(t.wrongPin);
    await chat.say("402913");
    const list = await chat.expectBot(t.list);
    expect(list.text).toMatch(/Chrome on Windows/);
    expect(list.text).toMatch(/iPhone app/);
    expect(Chat.ids(list)).toEqual(["rc_all", "rc_keep"]);
    await chat.tap("rc_all");
    await chat.expectBot(t.revoked);
    const advice = await chat.expectBot(t.advice);
    for (const has of t.adviceHas) expect(advice.text).toMatch(has);
    expect(Chat.ids(advice)).toEqual(["rc_pin", "rc_report", "rc_done"]);
    expect(await sys.core.prisma.login.count({ where: { contactId: c.id, revokedAt: null } })).toBe(0);
    await chat.tap("rc_done");
    await chat.expectBot(t.bye);
  });
});

describe("recover", () => {
  it("without a PIN or sessions it goes straight to the advice", async () => {
    const chat = new Chat(sys, "34612345402");
    await chat.say("recuperar");
    await chat.expectBot(/Vamos a proteger tu cuenta/);
    await chat.tap("rc_go");
    const code = await chat.code();
    await chat.say(code);
    await chat.expectBot(/no hay ningún otro dispositivo/);
    await chat.expectBot(/Tu cuenta vuelve a estar en tus manos/);
  });
});

/** change-number's texts (flows/change-number.yaml, and the engine's wrong-code text) in each language. */
const CHANGE_NUMBER: PerLocale<{
  keyword: string;
  intro: RegExp;
  ask: RegExp;
  invalid: RegExp;
  confirm: (newPhone: string, oldPhone: string) => string;
  step1: RegExp;
  step2: (newPhone: string) => RegExp;
  wrong4: RegExp;
  outcome: RegExp;
  moved: (oldPhone: string, newPhone: string) => RegExp;
}> = {
  en_US: {
    keyword: "change my number",
    intro: /takes two codes/,
    ask: /Type the new number in international format/,
    invalid: /That isn't in the right format/,
    confirm: (n, o) => `New number: *${n}*. Is it right? I'll first send a code to this number, ${o}.`,
    step1: /Step 1 of 2/,
    step2: (n) => new RegExp(`Step 2 of 2: I've sent a code by WhatsApp to \\*${re(n)}\\*`),
    wrong4: /not right\. 4 left/,
    outcome: /has moved from|couldn't move your account/,
    moved: (o, n) => new RegExp(`has moved from ${re(o)} to \\*${re(n)}\\*`),
  },
  es: {
    keyword: "cambiar mi número",
    intro: /hacen falta dos códigos/,
    ask: /Escribe el número nuevo en formato internacional/,
    invalid: /Ese formato no es correcto/,
    confirm: (n, o) => `Número nuevo: *${n}*. ¿Es correcto? Primero enviaré un código a este número, ${o}.`,
    step1: /Paso 1 de 2/,
    step2: (n) => new RegExp(`Paso 2 de 2: he enviado un código por WhatsApp a \\*${re(n)}\\*`),
    wrong4: /no es correcto\. Intentos restantes: 4/,
    outcome: /ha pasado de|no he podido pasar tu cuenta/,
    moved: (o, n) => new RegExp(`ha pasado de ${re(o)} a \\*${re(n)}\\*`),
  },
  pt_BR: {
    keyword: "trocar meu número",
    intro: /são dois códigos/,
    ask: /Digite o número novo no formato internacional/,
    invalid: /Esse formato não está certo/,
    confirm: (n, o) => `Número novo: *${n}*. Está certo? Primeiro vou enviar um código para este número, ${o}.`,
    step1: /Passo 1 de 2/,
    step2: (n) => new RegExp(`Passo 2 de 2: enviei um código pelo WhatsApp para \\*${re(n)}\\*`),
    wrong4: /não está certo\. Tentativas restantes: 4/,
    outcome: /passou de|não consegui levar sua conta/,
    moved: (o, n) => new RegExp(`passou de ${re(o)} para \\*${re(n)}\\*`),
  },
};

describe("change-number", () => {
  /** Both codes of a number change, up to the change_number action, in the old number's language; returns the old number's chat. */
  async function twoCodes(oldDigits: string, newDigits: string, locale: Locale = "en_US"): Promise<Chat> {
    const t = CHANGE_NUMBER[locale];
    const oldChat = new Chat(sys, oldDigits);
    await greet(oldChat);
    await oldChat.say(t.keyword);
    await oldChat.expectBot(t.intro);
    await oldChat.tap("cn_continue");
    await oldChat.expectBot(t.ask);
    await oldChat.say(`+${newDigits.slice(0, 2)} ${newDigits.slice(2)}`); // spaces are refused
    await oldChat.expectBot(t.invalid);
    await oldChat.expectBot(t.ask);
    await oldChat.say(`+${newDigits}`);
    await oldChat.expectBot(t.confirm(`+${newDigits}`, `+${oldDigits}`));
    await oldChat.tap("cn_yes");
    const oldCode = await oldChat.code();
    await oldChat.expectBot(t.step1);
    expect(latestCode(sys.sandbox, newDigits)).toBeNull(); // nothing to the new number before the current one is proven
    await oldChat.say(oldCode);
    const newCode = await waitFor(() => latestCode(sys.sandbox, newDigits));
    await oldChat.expectBot(t.step2(`+${newDigits}`));
    await oldChat.say(oldCode === newCode ? wrongCode(newCode) : oldCode); // the current number's code is no good here
    await oldChat.expectBot(t.wrong4);
    await oldChat.say(newCode);
    // the change's outcome ends the journey either way (see the tests below)
    await oldChat.expectBot(t.outcome);
    const verifications = await sys.core.prisma.verification.findMany({ where: { to: { in: [`+${oldDigits}`, `+${newDigits}`] } }, select: { to: true, purpose: true, status: true } });
    expect(verifications).toEqual(
      expect.arrayContaining([
        { to: `+${oldDigits}`, purpose: "change_number", status: "approved" },
        { to: `+${newDigits}`, purpose: "change_number_new", status: "approved" },
      ]),
    );
    return oldChat;
  }

  // the new number is in another country (English → Brazil, Spanish → US, Portuguese → Spain)
  const elsewhere = (l: Language): Language => LANGUAGES[(LANGUAGES.indexOf(l) + 2) % 3]!;
  describe.each(LANGUAGES)("$lang", (l) => {
    it("asks for a code to the current number, then one to the new number, and only then makes the change", async () => {
      const [oldDigits, newDigits] = [numberFor(l, 211), numberFor(elsewhere(l), 212)];
      const chat = await twoCodes(oldDigits, newDigits, l.locale);
      expect(chat.outbound().some((m) => CHANGE_NUMBER[l.locale].moved(`+${oldDigits}`, `+${newDigits}`).test(m.text))).toBe(true);
      // the flow is over, and the contact (with its conversation) now lives on the new number
      const session = await eventually(
        () => sys.core.prisma.session.findMany({ where: { contact: { waId: newDigits } } }),
        (rows) => rows.length === 1 && rows[0]!.flow === null,
      );
      expect(session).toHaveLength(1);
      expect(await sys.core.prisma.contact.count({ where: { waId: oldDigits } })).toBe(0);
    });
  });

  it("after both codes the account moves to the new number", async () => {
    const chat = await twoCodes("14155550414", "5511912345414");
    expect(chat.outbound().some((m) => /has moved from \+14155550414 to \*\+5511912345414\*/.test(m.text)) || sys.sandbox.conversation("5511912345414").some((m) => /has moved from/.test(m.text))).toBe(true);
    const moved = await eventually(() => sys.core.prisma.contact.findMany({ where: { phoneE164: "+5511912345414" } }), (rows) => rows.length === 1 && rows[0]!.waId === "5511912345414");
    expect(moved[0]!.verifiedAt).toBeNull();
  });

  it("stops when the current number's code is locked: nothing changes", async () => {
    const chat = new Chat(sys, "34612345404");
    await chat.say("cambiar número");
    await chat.expectBot(/dos códigos/);
    await chat.tap("cn_continue");
    await chat.expectBot(/formato internacional/);
    await chat.say("+34612345999");
    await chat.expectBot(/Número nuevo/);
    await chat.tap("cn_yes");
    const code = await chat.code();
    for (let left = 4; left >= 1; left--) {
      await chat.say(wrongCode(code));
      await chat.expectBot(new RegExp(`no es correcto\\. Intentos restantes: ${left}`));
    }
    await chat.say(wrongCode(code));
    await chat.expectBot(/el cambio de número se ha detenido/);
    expect((await contact("34612345404")).phoneE164).toBe("+34612345404");
  });
});

describe.each(LANGUAGES)("pin ($lang)", (l) => {
  const t = PIN[l.locale];
  it("set up (weak and mismatched PINs refused), then change it with the current PIN", async () => {
    const chat = new Chat(sys, numberFor(l, 221));
    await chat.say(t.keyword);
    await chat.expectBot(t.offer);
    await chat.tap("pin_setup");
    await chat.expectBot(t.choose);
    await chat.say("123456");
    await chat.expectBot(t.weak);
    await chat.expectBot(t.choose);
    await chat.say("538201");
    await chat.expectBot(t.confirm);
    await chat.say("538202");
    await chat.expectBot(t.mismatch);
    await chat.expectBot(t.choose);
    await chat.say("538201");
    await chat.expectBot(t.confirm);
    await chat.say("538201");
    await chat.expectBot(t.email);
    await chat.tap("pin_email_skip");
    await chat.expectBot(t.saved);
    // the PIN is stored redacted in the chat history
    const inbound = await sys.core.prisma.message.findMany({ where: { direction: "inbound", contact: { waId: chat.digits } } });
    expect(JSON.stringify(inbound.map((m) => m.payload))).not.toContain("538201");

    await chat.say(t.change);
    const menu = await chat.expectBot(t.on);
    expect(Chat.ids(menu)).toEqual(["pin_change", "pin_forgot", "pin_off"]);
    await chat.tap("pin_change");
    await chat.expectBot(t.current);
    await chat.say("538201");
    await chat.expectBot(t.choose);
    await chat.say("640917");
    await chat.expectBot(t.confirm);
    await chat.say("640917");
    await chat.expectBot(t.email);
    await chat.tap("pin_email_skip");
    await chat.expectBot(t.saved);
  });
});

describe("pin", () => {
  it("forgot PIN without a recovery email: a code first, then the waiting period from the request; once it is over the PIN is removed", async () => {
    const chat = new Chat(sys, "14155550406");
    await setPin(chat, "730518");
    await chat.say("forgot pin");
    await chat.expectBot(/Two-step verification is on/);
    await chat.tap("pin_forgot");
    await chat.expectBot(/First I'll check that this number is yours/);
    const code = await chat.code();
    await chat.say(code);
    const wait = await chat.expectBot(/only be reset after a waiting period, counted from the request\. You can reset it from (\S+) \(UTC\)/);
    expect(Chat.ids(wait)).toEqual(["pin_reset_cancel", "pin_reset_ok"]);
    const at = /from (\S+) \(UTC\)/.exec(wait.text)![1]!;
    expect(new Date(at).getTime()).toBeGreaterThan(clock.now().getTime());
    await chat.tap("pin_reset_ok");
    await chat.expectBot(/Until then your PIN stays on/);

    // the default waiting period is 7 days from the request: let the request be 8 days old (moving the clock would close the 24-hour window)
    const c = await contact(chat.digits);
    await sys.core.prisma.$executeRaw`UPDATE contact_pins SET reset_requested_at = reset_requested_at - interval '8 days' WHERE contact_id = ${c.id}::uuid`;
    await chat.say("forgot pin");
    const pending = await chat.expectBot(/someone asked to reset the PIN/);
    expect(Chat.ids(pending)).toEqual(["pin_reset_cancel", "pin_remember", "pin_keep_reset"]);
    await chat.tap("pin_keep_reset");
    const again = await chat.code(code);
    await chat.say(again);
    await chat.expectBot(/waiting period is over/);
    await chat.tap("pin_new_after_reset");
    await chat.expectBot(/Choose a 6-digit PIN/);
    await chat.say("904617");
    await chat.say("904617");
    await chat.expectBot(/recovery email\?/);
    await chat.tap("pin_email_skip");
    await chat.expectBot(/Your PIN is saved/);
  });

  it("forgot PIN with a recovery email on file: the link is emailed and the address is shown masked", async () => {
    const chat = new Chat(sys, "34612345407");
    await chat.say("mi pin");
    await chat.expectBot(/segundo candado/);
    await chat.tap("pin_setup");
    await chat.expectBot(/Elige un PIN/);
    await chat.say("285014");
    await chat.expectBot(/mismo PIN/);
    await chat.say("285014");
    await chat.expectBot(/correo de recuperación\?/);
    await chat.tap("pin_email_add");
    await chat.expectBot(/dirección de correo/);
    await chat.say("no es un correo");
    await chat.expectBot(/no parece una dirección/);
    await chat.say("Lucia@Example.com");
    await chat.expectBot(/PIN guardado; l•••@example\.com/);
    const c = await contact(chat.digits);
    expect((await sys.core.prisma.contactPin.findUniqueOrThrow({ where: { contactId: c.id } })).recoveryEmail).toBe("lucia@example.com");
    await chat.say("olvidé mi pin");
    await chat.expectBot(/verificación en dos pasos está activada/);
    await chat.tap("pin_forgot");
    const code = await chat.code();
    await chat.say(code);
    await chat.expectBot(/He enviado un enlace para restablecerlo a l\S*@example\.com/);
    expect(email.sent("lucia@example.com")).toHaveLength(1);
  });

  it("turning it off takes a code and the PIN", async () => {
    const chat = new Chat(sys, "14155550408");
    await setPin(chat, "851392");
    await chat.say("pin");
    await chat.expectBot(/Two-step verification is on/);
    await chat.tap("pin_off");
    const code = await chat.code();
    await chat.expectBot(/To turn it off, first type the code/);
    await chat.say(code);
    await chat.expectBot(/Now type your current PIN/);
    await chat.say("851392");
    await chat.expectBot(/Two-step verification is off/);
    const c = await contact(chat.digits);
    expect(await sys.core.prisma.contactPin.findUnique({ where: { contactId: c.id } })).toBeNull();
  });
});

/** login-notice's texts (flows/login-notice.yaml) in each language, and where "Secure my account" leads (recover). */
const LOGIN_NOTICE: PerLocale<{ notice: (device: string, location: string) => RegExp; advice: RegExp; simPin: RegExp; recover: RegExp }> = {
  en_US: {
    notice: (d, loc) => new RegExp(`New login to your account from \\*${re(d)}\\* in \\*${re(loc)}\\*`),
    advice: /We've signed out that login and told our team/,
    simPin: /Ask your carrier for a SIM PIN/,
    recover: /Let's secure your account/,
  },
  es: {
    notice: (d, loc) => new RegExp(`Nuevo inicio de sesión en tu cuenta desde \\*${re(d)}\\* en \\*${re(loc)}\\*`),
    advice: /Hemos cerrado ese inicio de sesión y avisado a nuestro equipo/,
    simPin: /Pide a tu operador un PIN de la SIM/,
    recover: /Vamos a proteger tu cuenta/,
  },
  pt_BR: {
    notice: (d, loc) => new RegExp(`Novo acesso à sua conta pelo \\*${re(d)}\\* em \\*${re(loc)}\\*`),
    advice: /Encerramos esse acesso e avisamos nossa equipe/,
    simPin: /Peça à sua operadora um PIN do chip/,
    recover: /Vamos proteger sua conta/,
  },
};

describe.each(LANGUAGES)("login-notice, started by the API ($lang)", (l) => {
  const t = LOGIN_NOTICE[l.locale];
  it("'This wasn't me' ends that session, tells the business and advises; 'Secure my account' continues in recover", async () => {
    const chat = new Chat(sys, numberFor(l, 231));
    await greet(chat);
    const c = await contact(chat.digits);
    const [bad, other] = [`sess-${chat.digits}-a`, `sess-${chat.digits}-b`];
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: bad, device: "Firefox on Linux", location: "Porto, PT" } });
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: other, device: "Android app", location: "Austin, US" } });
    const res = await request(sys.http.url)
      .post("/v1/flows/login-notice/start")
      .set(admin())
      .send({ to: `+${chat.digits}`, variables: { device: "Firefox on Linux", location: "Porto, PT", login_id: bad } });
    expect(res.status).toBe(202);
    const notice = await chat.expectBot(t.notice("Firefox on Linux", "Porto, PT"));
    expect(Chat.ids(notice)).toEqual(["login_was_me", "login_not_me"]);
    await chat.tap("login_not_me");
    const advice = await chat.expectBot(t.advice);
    expect(advice.text).toMatch(t.simPin);
    expect(Chat.ids(advice)).toEqual(["login_secure", "login_done"]);
    const logins = await sys.core.prisma.login.findMany({ where: { contactId: c.id }, orderBy: { externalId: "asc" } });
    expect(logins.map((x) => [x.externalId, x.revokedAt !== null])).toEqual([[bad, true], [other, false]]);
    // the business hears unauthorized_access.reported (its callback URL); the audit trail keeps the report
    const audit = await sys.core.prisma.auditEvent.findMany({ where: { type: "contact.unauthorized_access_reported" }, select: { data: true } });
    expect(audit.filter((a) => (a.data as { contactId?: string }).contactId === c.id)).toHaveLength(1);
    await chat.tap("login_secure");
    await chat.expectBot(t.recover);
  });
});

describe("login-notice (started by the API)", () => {
  it("'It was me' just thanks; outside the 24-hour window the login_notice template goes out", async () => {
    const chat = new Chat(sys, "34612345410");
    await greet(chat);
    await request(sys.http.url).post("/v1/flows/login-notice/start").set(admin()).send({ to: "+34612345410", variables: { device: "Safari", location: "Madrid", login_id: "x-1" } });
    await chat.expectBot(/Nuevo inicio de sesión en tu cuenta desde \*Safari\* en \*Madrid\*/);
    await chat.tap("login_was_me");
    await chat.expectBot(/Gracias por confirmarlo/);

    // a number that never wrote: only a template may go out
    const res = await request(sys.http.url).post("/v1/flows/login-notice/start").set(admin()).send({ to: "+14155550411", variables: { device: "Edge", location: "Denver", login_id: "x-2" } });
    expect(res.status).toBe(202);
    const out = await waitFor(() => sys.sandbox.conversation("14155550411").find((m) => m.direction === "outbound"));
    expect(out.type).toBe("template");
    expect(out.payload).toMatchObject({ name: "login_notice", components: [{ type: "body", parameters: [{ type: "text", text: "Edge" }, { type: "text", text: "Denver" }] }] });
  });

  it("a late tap on 'This wasn't me' (the notice's session is over) starts recover", async () => {
    const chat = new Chat(sys, "5511912345412");
    await greet(chat);
    await request(sys.http.url).post("/v1/flows/login-notice/start").set(admin()).send({ to: "+5511912345412", variables: { device: "Chrome", location: "Recife", login_id: "x-3" } });
    await chat.expectBot(/Novo acesso à sua conta/);
    clock.advance(31 * 60_000);
    await chat.tap("login_not_me");
    await chat.expectBot(/Vamos proteger sua conta/);
  });
});

/** reverify's texts (flows/reverify.yaml) in each language. */
const REVERIFY: PerLocale<{ suspicious: RegExp; code: RegExp; done: RegExp }> = {
  en_US: { suspicious: /We noticed unusual activity on your account/, code: /Type the code I just sent to this number/, done: /Thank you, your number is confirmed/ },
  es: { suspicious: /Hemos detectado actividad inusual en tu cuenta/, code: /Escribe el código que acabo de enviar a este número/, done: /Gracias, tu número está confirmado/ },
  pt_BR: { suspicious: /Notamos uma atividade incomum na sua conta/, code: /Digite o código que acabei de enviar para este número/, done: /Obrigado, seu número está confirmado/ },
};

describe.each(LANGUAGES)("reverify, started by the API ($lang)", (l) => {
  const t = REVERIFY[l.locale];
  it("says why, checks a code, clears the re-verify flag and marks the contact verified", async () => {
    const chat = new Chat(sys, numberFor(l, 241));
    await greet(chat);
    const c = await contact(chat.digits);
    await sys.core.prisma.contact.update({ where: { id: c.id }, data: { reverifyRequiredAt: clock.now() } });
    const res = await request(sys.http.url).post("/v1/flows/reverify/start").set(admin()).send({ to: `+${chat.digits}`, variables: { reason: "suspicious_activity" } });
    expect(res.status).toBe(202);
    const intro = await chat.expectBot(t.suspicious);
    expect(Chat.ids(intro)).toEqual(["rv_go", "rv_later"]);
    await chat.tap("rv_go");
    const code = await chat.code();
    await chat.expectBot(t.code);
    await chat.say(code);
    await chat.expectBot(t.done);
    const after = await eventually(() => contact(chat.digits), (x) => x.verifiedAt !== null && x.reverifyRequiredAt === null);
    expect(after.verifiedAt).not.toBeNull();
  });
});
