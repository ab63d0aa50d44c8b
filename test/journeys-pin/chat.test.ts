import express from "express";
import request from "supertest";
import type { ActionExecutor } from "../../src/flows/flow.handler";
import { pinResetRoutes } from "../../src/http/pin-reset.routes";
import type { ActionRegistry } from "../../src/journeys/actions";
import { createPinActions } from "../../src/journeys/pin.actions";
import { createEmailSender, RecordingEmailSender } from "../../src/providers/email";
import { ManualClock } from "../../src/shared/clock";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * A published flow that protects an account with the PIN: `pin_status` → `pin_verify`, with a "forgot" button that
 * runs `request_pin_reset`; driven through the Cloud API sandbox like a customer would.
 */
const BASE = "https://bot.example.test";
let sys: TestSystem;
let email: RecordingEmailSender;
let app: express.Express;
const clock = new ManualClock(Date.now());

// buildCore needs the actions before the core (and its PIN service) exists: the registry calls through
let pinActions: ActionRegistry = {};
const late: ActionRegistry = Object.fromEntries(
  ["pin_status", "request_pin_reset", "remove_pin"].map((name) => [name, ((ctx, params) => (pinActions[name] as ActionExecutor)(ctx, params)) as ActionExecutor]),
);

const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const botTexts = (digits: string) => sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound").map((m) => m.text);
const say = (digits: string, text: string) => sys.sandbox.injectInbound({ from: digits, text });
const tap = (digits: string, id: string, title: string) =>
  sys.sandbox.injectInbound({ from: digits, message: { type: "interactive", interactive: { type: "button_reply", button_reply: { id, title } } } });
const nextBotText = async (digits: string, count: number) => {
  const texts = await waitFor(() => {
    const t = botTexts(digits);
    return t.length >= count && t;
  });
  return texts[count - 1]!;
};

const FLOW = {
  name: "account",
  triggers: [{ type: "keyword", keywords: ["account"] }],
  steps: [
    { id: "status", type: "action", action: "pin_status", save: "pin", next: "has_pin" },
    { id: "has_pin", type: "branch", cases: [{ when: { var: "pin.set", equals: true }, next: "menu" }], default: "no_pin" },
    {
      id: "menu",
      type: "send",
      text: "Your account is protected by a PIN.",
      buttons: [
        { id: "pin_enter", title: "Enter my PIN", next: "check_pin" },
        { id: "pin_forgot", title: "I forgot my PIN", next: "reset" },
      ],
    },
    { id: "check_pin", type: "pin_verify", text: "Enter your PIN.", approved: "welcome", locked: "locked_out" },
    { id: "welcome", type: "end", text: "Welcome back!" },
    {
      id: "locked_out",
      type: "send",
      text: "Too many wrong PINs: your PIN is locked for a while.",
      buttons: [{ id: "pin_forgot", title: "I forgot my PIN", next: "reset" }],
    },
    { id: "reset", type: "action", action: "request_pin_reset", save: "reset", next: "how", onError: "reset_failed" },
    {
      id: "how",
      type: "branch",
      cases: [
        { when: { var: "reset.sent", equals: "email" }, next: "emailed" },
        { when: { var: "reset.sent", equals: "wait" }, next: "waiting" },
      ],
      default: "removed",
    },
    { id: "emailed", type: "end", text: "We emailed a reset link to {{reset.emailMasked}}." },
    { id: "waiting", type: "end", text: "You can reset your PIN from {{reset.availableAt}}." },
    { id: "removed", type: "end", text: "Your PIN was removed." },
    { id: "no_pin", type: "end", text: "You have no PIN yet." },
    { id: "reset_failed", type: "end", text: "We could not reset your PIN right now." },
  ],
};

beforeAll(async () => {
  sys = await startTestSystem({ clock, actions: [late], env: { OUTBOUND_RECIPIENT_GAP_MS: "5", EMAIL_PROVIDER: "sandbox", PUBLIC_BASE_URL: BASE } });
  email = createEmailSender(sys.config, sys.core.logger) as RecordingEmailSender;
  expect(email).toBeInstanceOf(RecordingEmailSender);
  const { prisma, pins, keyring, logger } = sys.core;
  pinActions = createPinActions({ prisma, pins, keyring, clock, logger, email, config: sys.config });
  app = express().use(pinResetRoutes({ prisma, pins, keyring, clock, logger, publicBaseUrl: sys.config.PUBLIC_BASE_URL }));
  const res = await request(sys.http.url).put("/admin/flows/account").set(admin()).send(FLOW);
  expect(res.status).toBe(201);
});
afterAll(async () => {
  await sys?.close();
});

async function contactId(digits: string): Promise<string> {
  return (await sys.core.prisma.contact.findFirstOrThrow({ where: { waId: digits } })).id;
}

it("forgot PIN: the flow checks the PIN's status, emails a reset link, and the link removes the PIN", async () => {
  const who = "14155550181";
  await say(who, "account");
  expect(await nextBotText(who, 1)).toBe("You have no PIN yet.");

  const id = await contactId(who);
  expect(await sys.core.pins.set(sys.core.prisma, { tenantId: sys.tenantId, contactId: id, pin: "580314", recoveryEmail: "ada@example.com" })).toEqual({ ok: true });

  await say(who, "account");
  expect(await nextBotText(who, 2)).toBe("Your account is protected by a PIN.");
  await tap(who, "pin_enter", "Enter my PIN");
  expect(await nextBotText(who, 3)).toBe("Enter your PIN.");
  await say(who, "580314");
  expect(await nextBotText(who, 4)).toBe("Welcome back!");

  await say(who, "account");
  expect(await nextBotText(who, 5)).toBe("Your account is protected by a PIN.");
  await tap(who, "pin_forgot", "I forgot my PIN");
  expect(await nextBotText(who, 6)).toBe("We emailed a reset link to a•••@example.com.");

  const mail = await waitFor(() => email.last("ada@example.com"));
  const path = /https:\/\/bot\.example\.test(\/pin-reset\/[A-Za-z0-9_-]{43})/.exec(mail.text)?.[1];
  expect(path).toBeDefined();
  // the chat never showed the address or the link
  expect(JSON.stringify(sys.sandbox.conversation(who))).not.toMatch(/ada@example\.com|pin-reset/);

  expect((await request(app).get(path!)).status).toBe(200);
  expect((await request(app).post(path!).set("Origin", BASE).type("form").send({})).status).toBe(200);
  expect(await sys.core.pins.has(sys.core.prisma, id)).toBe(false);
  expect((await request(app).post(path!).type("form").send({})).status).toBe(410);

  await say(who, "account");
  expect(await nextBotText(who, 7)).toBe("You have no PIN yet.");
});

it("wrong PINs lock the PIN; the locked branch offers the reset, which (without an email) waits out the period", async () => {
  const who = "14155550182";
  await say(who, "account");
  expect(await nextBotText(who, 1)).toBe("You have no PIN yet.");
  const id = await contactId(who);
  await sys.core.pins.set(sys.core.prisma, { tenantId: sys.tenantId, contactId: id, pin: "580314" });
  const setAt = clock.now().getTime();

  await say(who, "account");
  expect(await nextBotText(who, 2)).toBe("Your account is protected by a PIN.");
  await tap(who, "pin_enter", "Enter my PIN");
  expect(await nextBotText(who, 3)).toBe("Enter your PIN.");
  let count = 3;
  for (let left = 4; left >= 1; left--) {
    await say(who, "111222");
    expect(await nextBotText(who, ++count)).toBe(`Wrong PIN. ${left} left.`);
  }
  await say(who, "111222");
  expect(await nextBotText(who, ++count)).toBe("Too many wrong PINs: your PIN is locked for a while.");
  const pin = await sys.core.prisma.contactPin.findUniqueOrThrow({ where: { contactId: id } });
  expect(pin.lockedUntil!.getTime()).toBe(clock.now().getTime() + 30 * 60_000);

  // even the right PIN is refused while locked
  await say(who, "cancel");
  expect(await nextBotText(who, ++count)).toMatch(/stopped/);
  await say(who, "account");
  expect(await nextBotText(who, ++count)).toBe("Your account is protected by a PIN.");
  await tap(who, "pin_enter", "Enter my PIN");
  expect(await nextBotText(who, ++count)).toBe("Enter your PIN.");
  await say(who, "580314");
  expect(await nextBotText(who, ++count)).toBe("Too many wrong PINs: your PIN is locked for a while.");

  await tap(who, "pin_forgot", "I forgot my PIN");
  expect(await nextBotText(who, ++count)).toBe(`You can reset your PIN from ${new Date(setAt + 7 * 86_400_000).toISOString()}.`);
  expect(email.sent()).toHaveLength(1); // only the first test's
  expect(await sys.core.pins.has(sys.core.prisma, id)).toBe(true);
});
