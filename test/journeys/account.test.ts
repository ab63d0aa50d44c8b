import request from "supertest";
import { ManualClock } from "../../src/shared/clock";
import type { RecordingEmailSender } from "../../src/providers/email/recording-sender";
import { latestCode, waitFor, type TestSystem } from "../helpers/system";
import { Chat, startJourneys, wrongCode } from "./harness";

/** The account journeys: recover, change-number, pin, login-notice and reverify (the last two started by the API). */
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
async function setPin(chat: Chat, pin: string): Promise<void> {
  await chat.say("pin");
  await chat.expectBot(/second lock/);
  await chat.tap("pin_setup");
  await chat.expectBot(/Choose a 6-digit PIN/);
  await chat.say(pin);
  await chat.expectBot(/same PIN again/);
  await chat.say(pin);
  await chat.expectBot(/recovery email\?/);
  await chat.tap("pin_email_skip");
  await chat.expectBot(/Your PIN is saved/);
}

describe("recover", () => {
  it("code, PIN, the list of sessions, sign out of all of them, advice", async () => {
    const chat = new Chat(sys, "14155550401");
    await greet(chat);
    await setPin(chat, "402913");
    const c = await contact(chat.digits);
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: "web-1", device: "Chrome on Windows", location: "Lisbon, PT" } });
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: "app-2", device: "iPhone app", location: "Austin, US" } });

    await chat.say("recover my account");
    await chat.expectBot(/Let's secure your account/);
    await chat.tap("rc_go");
    const code = await chat.code();
    await chat.expectBot(/Type the code I just sent/);
    await chat.say(code);
    await chat.expectBot(/Two-step verification is on\. Type your 6-digit PIN/);
    await chat.say("111111".replace(/1/g, "5")); // a wrong PIN
    await chat.expectBot(/Wrong PIN\. 4 left/);
    await chat.say("402913");
    const list = await chat.expectBot(/Signed in to your account right now/);
    expect(list.text).toMatch(/Chrome on Windows/);
    expect(list.text).toMatch(/iPhone app/);
    expect(Chat.ids(list)).toEqual(["rc_all", "rc_keep"]);
    await chat.tap("rc_all");
    await chat.expectBot(/Done: 2 session\(s\) signed out/);
    const advice = await chat.expectBot(/Your account is back in your hands/);
    expect(advice.text).toMatch(/ends the intruder's session/);
    expect(advice.text).toMatch(/two-step verification/);
    expect(advice.text).toMatch(/Warn your contacts/);
    expect(advice.text).toMatch(/SIM PIN/);
    expect(await sys.core.prisma.login.count({ where: { contactId: c.id, revokedAt: null } })).toBe(0);
    await chat.tap("rc_done");
    await chat.expectBot(/Stay safe/);
  });

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

describe("change-number", () => {
  /** Both codes of a number change, up to the change_number action; returns the new number's chat. */
  async function twoCodes(oldDigits: string, newDigits: string): Promise<Chat> {
    const oldChat = new Chat(sys, oldDigits);
    await greet(oldChat);
    await oldChat.say("change my number");
    await oldChat.expectBot(/two codes/);
    await oldChat.tap("cn_continue");
    await oldChat.expectBot(/international format/);
    await oldChat.say(`+${newDigits.slice(0, 2)} ${newDigits.slice(2)}`); // spaces are refused
    await oldChat.expectBot(/isn't in the right format/);
    await oldChat.expectBot(/international format/);
    await oldChat.say(`+${newDigits}`);
    await oldChat.expectBot(`New number: *+${newDigits}*. Is it right? I'll first send a code to this number, +${oldDigits}.`);
    await oldChat.tap("cn_yes");
    const oldCode = await oldChat.code();
    await oldChat.expectBot(/Step 1 of 2/);
    expect(latestCode(sys.sandbox, newDigits)).toBeNull(); // nothing to the new number before the current one is proven
    await oldChat.say(oldCode);
    const newCode = await waitFor(() => latestCode(sys.sandbox, newDigits));
    await oldChat.expectBot(new RegExp(`Step 2 of 2: I've sent a code by WhatsApp to \\*\\+${newDigits}\\*`));
    await oldChat.say(oldCode === newCode ? wrongCode(newCode) : oldCode); // the current number's code is no good here
    await oldChat.expectBot(/not right\. 4 left/);
    await oldChat.say(newCode);
    // the change's outcome ends the journey either way (see the tests below)
    await oldChat.expectBot(/has moved from|couldn't move your account/);
    const verifications = await sys.core.prisma.verification.findMany({ where: { to: { in: [`+${oldDigits}`, `+${newDigits}`] } }, select: { to: true, purpose: true, status: true } });
    expect(verifications).toEqual(
      expect.arrayContaining([
        { to: `+${oldDigits}`, purpose: "change_number", status: "approved" },
        { to: `+${newDigits}`, purpose: "change_number_new", status: "approved" },
      ]),
    );
    return oldChat;
  }

  it("asks for a code to the current number, then one to the new number, and only then makes the change", async () => {
    await twoCodes("14155550403", "5511912345403");
    // the flow is over, and the contact (with its conversation) now lives on the new number
    const session = await eventually(
      () => sys.core.prisma.session.findMany({ where: { contact: { waId: "5511912345403" } } }),
      (rows) => rows.length === 1 && rows[0]!.flow === null,
    );
    expect(session).toHaveLength(1);
    expect(await sys.core.prisma.contact.count({ where: { waId: "14155550403" } })).toBe(0);
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

describe("pin", () => {
  it("set up (weak and mismatched PINs refused), then change it with the current PIN", async () => {
    const chat = new Chat(sys, "5511912345405");
    await chat.say("meu pin");
    await chat.expectBot(/segunda trava/);
    await chat.tap("pin_setup");
    await chat.expectBot(/Escolha um PIN de 6 dígitos/);
    await chat.say("123456");
    await chat.expectBot(/fácil demais de adivinhar/);
    await chat.expectBot(/Escolha um PIN de 6 dígitos/);
    await chat.say("538201");
    await chat.expectBot(/Digite o mesmo PIN de novo/);
    await chat.say("538202");
    await chat.expectBot(/não são iguais/);
    await chat.expectBot(/Escolha um PIN/);
    await chat.say("538201");
    await chat.expectBot(/mesmo PIN/);
    await chat.say("538201");
    await chat.expectBot(/e-mail de recuperação\?/);
    await chat.tap("pin_email_skip");
    await chat.expectBot(/PIN salvo/);
    // the PIN is stored redacted in the chat history
    const inbound = await sys.core.prisma.message.findMany({ where: { direction: "inbound", contact: { waId: chat.digits } } });
    expect(JSON.stringify(inbound.map((m) => m.payload))).not.toContain("538201");

    await chat.say("trocar pin");
    const menu = await chat.expectBot(/verificação em duas etapas está ativada/);
    expect(Chat.ids(menu)).toEqual(["pin_change", "pin_forgot", "pin_off"]);
    await chat.tap("pin_change");
    await chat.expectBot(/Digite seu PIN atual/);
    await chat.say("538201");
    await chat.expectBot(/Escolha um PIN/);
    await chat.say("640917");
    await chat.expectBot(/mesmo PIN/);
    await chat.say("640917");
    await chat.expectBot(/e-mail de recuperação\?/);
    await chat.tap("pin_email_skip");
    await chat.expectBot(/PIN salvo/);
  });

  it("forgot PIN without a recovery email: a code first, then the waiting period; once it is over the PIN is removed", async () => {
    const chat = new Chat(sys, "14155550406");
    await setPin(chat, "730518");
    await chat.say("forgot pin");
    await chat.expectBot(/Two-step verification is on/);
    await chat.tap("pin_forgot");
    await chat.expectBot(/First I'll check that this number is yours/);
    const code = await chat.code();
    await chat.say(code);
    const wait = await chat.expectBot(/only be reset after a waiting period\. You can reset it from (\S+) \(UTC\)/);
    const at = /from (\S+) \(UTC\)/.exec(wait.text)![1]!;
    expect(new Date(at).getTime()).toBeGreaterThan(clock.now().getTime());

    // the default waiting period is 7 days: let the PIN be 8 days old (moving the clock would close the 24-hour window)
    const c = await contact(chat.digits);
    await sys.core.prisma.$executeRaw`UPDATE contact_pins SET created_at = created_at - interval '8 days', updated_at = updated_at - interval '8 days' WHERE contact_id = ${c.id}::uuid`;
    await chat.say("forgot pin");
    await chat.expectBot(/Two-step verification is on/);
    await chat.tap("pin_forgot");
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

describe("login-notice (started by the API)", () => {
  it("'This wasn't me' ends that session, tells the business and advises; 'Secure my account' continues in recover", async () => {
    const chat = new Chat(sys, "14155550409");
    await greet(chat);
    const c = await contact(chat.digits);
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: "sess-409", device: "Firefox on Linux", location: "Porto, PT" } });
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: "sess-410", device: "Android app", location: "Austin, US" } });
    const res = await request(sys.http.url)
      .post("/v1/flows/login-notice/start")
      .set(admin())
      .send({ to: "+14155550409", variables: { device: "Firefox on Linux", location: "Porto, PT", login_id: "sess-409" } });
    expect(res.status).toBe(202);
    const notice = await chat.expectBot(/New login to your account from \*Firefox on Linux\* in \*Porto, PT\*/);
    expect(Chat.ids(notice)).toEqual(["login_was_me", "login_not_me"]);
    await chat.tap("login_not_me");
    const advice = await chat.expectBot(/We've signed out that login and told our team/);
    expect(advice.text).toMatch(/SIM PIN/);
    const logins = await sys.core.prisma.login.findMany({ where: { contactId: c.id }, orderBy: { externalId: "asc" } });
    expect(logins.map((l) => [l.externalId, l.revokedAt !== null])).toEqual([["sess-409", true], ["sess-410", false]]);
    // the business hears unauthorized_access.reported (its callback URL); the audit trail keeps the report
    const audit = await sys.core.prisma.auditEvent.findMany({ where: { type: "contact.unauthorized_access_reported" }, select: { data: true } });
    expect(audit.filter((a) => (a.data as { contactId?: string }).contactId === c.id)).toHaveLength(1);
    await chat.tap("login_secure");
    await chat.expectBot(/Let's secure your account/);
  });

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

describe("reverify (started by the API)", () => {
  it("says why, checks a code, clears the re-verify flag and marks the contact verified", async () => {
    const chat = new Chat(sys, "14155550413");
    await greet(chat);
    const c = await contact(chat.digits);
    await sys.core.prisma.contact.update({ where: { id: c.id }, data: { reverifyRequiredAt: clock.now() } });
    const res = await request(sys.http.url).post("/v1/flows/reverify/start").set(admin()).send({ to: "+14155550413", variables: { reason: "suspicious_activity" } });
    expect(res.status).toBe(202);
    await chat.expectBot(/unusual activity on your account/);
    await chat.tap("rv_go");
    const code = await chat.code();
    await chat.say(code);
    await chat.expectBot(/your number is confirmed/);
    const after = await eventually(() => contact(chat.digits), (x) => x.verifiedAt !== null && x.reverifyRequiredAt === null);
    expect(after.verifiedAt).not.toBeNull();
  });
});
