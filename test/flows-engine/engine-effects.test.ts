import { REDACTED } from "../../src/flows/engine";
import type { FlowDefinition } from "../../src/flows/schema";
import { ctx, result, say, start, steps, texts } from "./helpers";

describe("otp_request", () => {
  const def = steps(
    { id: "o", type: "otp_request", next: "sent" },
    { id: "sent", type: "end", text: "code sent" },
  );

  it("emits an otp_request effect to the contact's phone by default and waits for its result", () => {
    const out = start(def);
    expect(out.effects).toEqual([{ type: "otp_request", purpose: "login", channel: undefined, to: "+14155550123" }]);
    expect(out.done).toBe(false);
    expect(out.state).toMatchObject({ step: "o", wait: { kind: "result", effect: "otp_request" } });
  });

  it("uses the interpolated `to`, purpose and channel when given", () => {
    const d = steps({ id: "o", type: "otp_request", to: "{{new_phone}}", purpose: "change_number", channel: "sms" });
    expect(start(d, ctx(), { new_phone: "+34600111222" }).effects).toEqual([{ type: "otp_request", purpose: "change_number", channel: "sms", to: "+34600111222" }]);
  });

  it("a contact without a phone gives an empty `to`", () => {
    expect(start(def, ctx({ contact: { name: "Ada", phone: null } })).effects[0]).toMatchObject({ to: "" });
  });

  it("result ok → next", () => {
    const out = result(def, start(def).state, { type: "otp_request", ok: true });
    expect(texts(out)).toEqual(["code sent"]);
    expect(out.done).toBe(true);
  });

  it("result error → onError, with the error saved in otp_error", () => {
    const d = steps(
      { id: "o", type: "otp_request", next: "sent", onError: "oops" },
      { id: "sent", type: "end", text: "code sent" },
      { id: "oops", type: "end", text: "could not send: {{otp_error}}" },
    );
    const out = result(d, start(d).state, { type: "otp_request", ok: false, error: "rate_limited" });
    expect(texts(out)).toEqual(["could not send: rate_limited"]);
    expect(out.state.vars.otp_error).toBe("rate_limited");
  });

  it("result error without onError → the localized error text, and the flow ends", () => {
    const es = ctx({ locale: "es" });
    const out = result(def, start(def, es).state, { type: "otp_request", ok: false, error: "blocked" }, es);
    expect(texts(out)).toEqual(["Algo salió mal. Inténtalo más tarde."]);
    expect(out.done).toBe(true);
    expect(out.state.step).toBeNull();
  });
});

describe("otp_verify", () => {
  function verifyFlow(extra: Record<string, unknown> = {}): FlowDefinition {
    return steps(
      { id: "v", type: "otp_verify", text: "Send the code we sent to {{contact.phone}}", approved: "ok", ...extra },
      { id: "ok", type: "end", text: "verified ({{otp_status}})" },
      { id: "wrong_step", type: "end", text: "wrong branch" },
      { id: "expired_step", type: "end", text: "expired branch" },
      { id: "locked_step", type: "end", text: "locked branch" },
    );
  }
  const def = verifyFlow();
  const waiting = () => start(def).state;
  const submitted = () => say(def, waiting(), "482915").state;

  it("asks for the code and waits", () => {
    const out = start(def);
    expect(texts(out)).toEqual(["Send the code we sent to +14155550123"]);
    expect(out.state).toMatchObject({ step: "v", wait: { kind: "otp_code" } });
  });

  it("non-digit text → 'send the code as digits', keeps waiting, no check", () => {
    for (const t of ["abc", "12ab56", "123", "12345678901", "", null]) {
      const out = say(def, waiting(), t);
      expect(texts(out)).toEqual(["Please send the code as digits."]);
      expect(out.effects.some((e) => e.type === "otp_check")).toBe(false);
      expect(out.state.wait).toEqual({ kind: "otp_code" });
      expect(out.done).toBe(false);
    }
    const pt = ctx({ locale: "pt_BR" });
    expect(texts(say(def, start(def, pt).state, "abc", pt))).toEqual(["Envie o código em dígitos, por favor."]);
  });

  it("digits → an otp_check effect (spaces and dashes dropped), secret input, waits for the result", () => {
    const out = say(def, waiting(), " 482-915 ");
    expect(out.effects).toEqual([{ type: "otp_check", purpose: "login", to: "+14155550123", code: "482915" }]);
    expect(out.secretInput).toBe(true);
    expect(out.state).toMatchObject({ step: "v", wait: { kind: "result", effect: "otp_check" } });
    expect(JSON.stringify(out.state)).not.toContain("482915");
  });

  it("the check uses the step's purpose and interpolated `to`", () => {
    const d = verifyFlow({ purpose: "change_number", to: "{{new_phone}}" });
    const s = start(d, ctx(), { new_phone: "+34600111222" }).state;
    expect(say(d, s, "1234").effects).toEqual([{ type: "otp_check", purpose: "change_number", to: "+34600111222", code: "1234" }]);
  });

  it("approved → the approved step, with otp_status saved", () => {
    const out = result(def, submitted(), { type: "otp_check", status: "approved" });
    expect(texts(out)).toEqual(["verified (approved)"]);
    expect(out.state.vars.otp_status).toBe("approved");
    expect(out.done).toBe(true);
  });

  it("wrong without a `wrong` branch → re-asks saying how many tries are left", () => {
    const out = result(def, submitted(), { type: "otp_check", status: "wrong", attemptsLeft: 2 });
    expect(texts(out)).toEqual(["That code is not right. 2 left."]);
    expect(out.state).toMatchObject({ step: "v", wait: { kind: "otp_code" } });
    expect(out.done).toBe(false);
    // and the next code is checked again
    expect(say(def, out.state, "111111").effects).toEqual([{ type: "otp_check", purpose: "login", to: "+14155550123", code: "111111" }]);
    const es = ctx({ locale: "es" });
    expect(texts(result(def, submitted(), { type: "otp_check", status: "wrong", attemptsLeft: 1 }, es))).toEqual(["Ese código no es correcto. Intentos restantes: 1."]);
  });

  it("wrong with a `wrong` branch → that branch", () => {
    const d = verifyFlow({ wrong: "wrong_step" });
    const out = result(d, say(d, start(d).state, "1234").state, { type: "otp_check", status: "wrong", attemptsLeft: 2 });
    expect(texts(out)).toEqual(["wrong branch"]);
    expect(out.state.vars.otp_status).toBe("wrong");
  });

  it("expired → the expired branch, or the default text and the end", () => {
    const out = result(def, submitted(), { type: "otp_check", status: "expired" });
    expect(texts(out)).toEqual(["That code has expired."]);
    expect(out.done).toBe(true);
    const d = verifyFlow({ expired: "expired_step" });
    expect(texts(result(d, say(d, start(d).state, "1234").state, { type: "otp_check", status: "expired" }))).toEqual(["expired branch"]);
  });

  it("locked → the locked branch, or the default text and the end", () => {
    const out = result(def, submitted(), { type: "otp_check", status: "locked" });
    expect(texts(out)).toEqual(["Too many wrong attempts. Please try again later."]);
    expect(out.done).toBe(true);
    const d = verifyFlow({ locked: "locked_step", expired: "expired_step" });
    expect(texts(result(d, say(d, start(d).state, "1234").state, { type: "otp_check", status: "locked" }))).toEqual(["locked branch"]);
  });

  it("a message while the check is pending is ignored", () => {
    const s = submitted();
    const out = say(def, s, "999999");
    expect(out.effects).toEqual([]);
    expect(out.state).toEqual(s);
  });
});

describe("pin_set", () => {
  const def = steps(
    { id: "p", type: "pin_set", text: "Choose a 6-digit PIN", confirmText: "Again, please", next: "done" },
    { id: "done", type: "end", text: "PIN saved" },
  );
  const PIN = "482915";

  it("asks for the PIN and waits", () => {
    const out = start(def);
    expect(texts(out)).toEqual(["Choose a 6-digit PIN"]);
    expect(out.state).toMatchObject({ step: "p", wait: { kind: "pin" } });
  });

  it("something that is not 6 digits → the format text, secret, keeps waiting", () => {
    for (const t of ["12345", "1234567", "12ab56", null]) {
      const out = say(def, start(def).state, t);
      expect(texts(out)).toEqual(["A PIN is 6 digits."]);
      expect(out.secretInput).toBe(true);
      expect(out.state.wait).toEqual({ kind: "pin" });
    }
  });

  it("a weak PIN (ctx.pinWeakness) is refused with the reason and asked again", () => {
    const out = say(def, start(def).state, "123456");
    expect(texts(out)).toEqual(["too simple", "Choose a 6-digit PIN"]);
    expect(out.secretInput).toBe(true);
    expect(out.state.wait).toEqual({ kind: "pin" });
    expect(out.effects.some((e) => e.type === "pin_set")).toBe(false);
  });

  it("weakText wraps the reason via {{reason}}", () => {
    const d = steps({ id: "p", type: "pin_set", text: "PIN?", confirmText: "Again", weakText: "Weak PIN: {{reason}}." });
    expect(texts(say(d, start(d).state, "123456"))).toEqual(["Weak PIN: too simple.", "PIN?"]);
  });

  it("the first entry is kept only as a digest: the state never holds the PIN", () => {
    const out = say(def, start(def).state, PIN);
    expect(texts(out)).toEqual(["Again, please"]);
    expect(out.secretInput).toBe(true);
    expect(out.state.wait).toEqual({ kind: "pin", first: "d:519284" });
    expect(JSON.stringify(out.state)).not.toContain(PIN);
  });

  it("spaces inside the PIN are ignored", () => {
    expect(say(def, start(def).state, "482 915").state.wait).toEqual({ kind: "pin", first: "d:519284" });
  });

  it("a mismatching confirmation restarts from the first entry", () => {
    const first = say(def, start(def).state, PIN).state;
    const out = say(def, first, "482916");
    expect(texts(out)).toEqual(["The two PINs differ. Let's start again.", "Choose a 6-digit PIN"]);
    expect(out.state.wait).toEqual({ kind: "pin" });
    expect(out.effects.some((e) => e.type === "pin_set")).toBe(false);
    expect(JSON.stringify(out.state)).not.toContain("482916");
    // after a restart, the next entry is a first entry again
    expect(say(def, out.state, "654321").state.wait).toEqual({ kind: "pin", first: "d:123456" });
  });

  it("mismatchText replaces the default mismatch text", () => {
    const d = steps({ id: "p", type: "pin_set", text: "PIN?", confirmText: "Again", mismatchText: { en_US: "No match", es: "No coinciden" } });
    const es = ctx({ locale: "es" });
    const first = say(d, start(d, es).state, PIN, es).state;
    expect(texts(say(d, first, "111111", es))).toEqual(["No coinciden", "PIN?"]);
  });

  it("a matching confirmation → a pin_set effect carrying the PIN; the state still has no PIN", () => {
    const first = say(def, start(def).state, PIN).state;
    const out = say(def, first, PIN);
    expect(out.effects).toEqual([{ type: "pin_set", pin: PIN }]);
    expect(out.secretInput).toBe(true);
    expect(out.state).toMatchObject({ step: "p", wait: { kind: "result", effect: "pin_set" } });
    expect(JSON.stringify(out.state)).not.toContain(PIN);
  });

  it("result weak → the reason and the question again, from the first entry", () => {
    const pending = say(def, say(def, start(def).state, PIN).state, PIN).state;
    const out = result(def, pending, { type: "pin_set", ok: false, reason: "Do not use your birth date" });
    expect(texts(out)).toEqual(["Do not use your birth date", "Choose a 6-digit PIN"]);
    expect(out.state.wait).toEqual({ kind: "pin" });
    expect(out.done).toBe(false);
  });

  it("result ok → next", () => {
    const pending = say(def, say(def, start(def).state, PIN).state, PIN).state;
    const out = result(def, pending, { type: "pin_set", ok: true });
    expect(texts(out)).toEqual(["PIN saved"]);
    expect(out.done).toBe(true);
    expect(JSON.stringify(out)).not.toContain(PIN);
  });
});

describe("pin_verify", () => {
  function pinFlow(extra: Record<string, unknown> = {}): FlowDefinition {
    return steps(
      { id: "pv", type: "pin_verify", text: "Your PIN?", approved: "ok", ...extra },
      { id: "ok", type: "end", text: "welcome ({{pin_status}})" },
      { id: "w", type: "end", text: "wrong branch" },
      { id: "l", type: "end", text: "locked branch" },
      { id: "ns", type: "end", text: "not set branch" },
    );
  }
  const def = pinFlow();
  const pending = (d = def) => say(d, start(d).state, "482915").state;

  it("asks, and a 6-digit PIN → a pin_check effect, secret, waiting for the result", () => {
    const s = start(def);
    expect(texts(s)).toEqual(["Your PIN?"]);
    const out = say(def, s.state, "482915");
    expect(out.effects).toEqual([{ type: "pin_check", pin: "482915" }]);
    expect(out.secretInput).toBe(true);
    expect(out.state).toMatchObject({ step: "pv", wait: { kind: "result", effect: "pin_check" } });
    expect(JSON.stringify(out.state)).not.toContain("482915");
  });

  it("a weak PIN is still checked (weakness applies to setting only)", () => {
    expect(say(def, start(def).state, "123456").effects).toEqual([{ type: "pin_check", pin: "123456" }]);
  });

  it("not 6 digits → the format text, no check", () => {
    const out = say(def, start(def).state, "1234");
    expect(texts(out)).toEqual(["A PIN is 6 digits."]);
    expect(out.secretInput).toBe(true);
    expect(out.state.wait).toEqual({ kind: "pin" });
  });

  it("approved → approved, with pin_status saved", () => {
    const out = result(def, pending(), { type: "pin_check", status: "approved" });
    expect(texts(out)).toEqual(["welcome (approved)"]);
    expect(out.state.vars.pin_status).toBe("approved");
  });

  it("wrong → re-asks with tries left, or the `wrong` branch", () => {
    const out = result(def, pending(), { type: "pin_check", status: "wrong", attemptsLeft: 4 });
    expect(texts(out)).toEqual(["Wrong PIN. 4 left."]);
    expect(out.state).toMatchObject({ step: "pv", wait: { kind: "pin" } });
    expect(say(def, out.state, "111111").effects).toEqual([{ type: "pin_check", pin: "111111" }]);
    const d = pinFlow({ wrong: "w" });
    expect(texts(result(d, pending(d), { type: "pin_check", status: "wrong", attemptsLeft: 4 }))).toEqual(["wrong branch"]);
  });

  it("locked → the locked branch, or the default text and the end", () => {
    const out = result(def, pending(), { type: "pin_check", status: "locked" });
    expect(texts(out)).toEqual(["Too many wrong attempts. Please try again later."]);
    expect(out.done).toBe(true);
    const d = pinFlow({ locked: "l" });
    expect(texts(result(d, pending(d), { type: "pin_check", status: "locked" }))).toEqual(["locked branch"]);
  });

  it("not_set → the notSet branch, or the error text and the end", () => {
    const out = result(def, pending(), { type: "pin_check", status: "not_set" });
    expect(texts(out)).toEqual(["Something went wrong on our side. Please try again later."]);
    expect(out.done).toBe(true);
    const d = pinFlow({ notSet: "ns" });
    const o = result(d, pending(d), { type: "pin_check", status: "not_set" });
    expect(texts(o)).toEqual(["not set branch"]);
    expect(o.state.vars.pin_status).toBe("not_set");
  });
});

describe("http", () => {
  const def = steps(
    { id: "q", type: "ask", text: "Secret word?", save: "word", secret: true, input: { type: "text" }, next: "h" },
    { id: "h", type: "http", url: "https://api.example.com/check", save: "api", onError: "err", next: "ok" },
    { id: "ok", type: "end", text: "status={{api.status}} tier={{api.user.tier}}" },
    { id: "err", type: "end", text: "failed: {{http_error}}" },
  );
  const pending = () => say(def, start(def, ctx(), { plan: "pro", count: 2 }).state, "swordfish").state;

  it("emits an http effect with the non-secret variables only (a [redacted] var is left out)", () => {
    const out = say(def, start(def, ctx(), { plan: "pro", count: 2 }).state, "swordfish");
    expect(out.state.vars.word).toBe(REDACTED);
    expect(out.effects).toEqual([{ type: "http", url: "https://api.example.com/check", method: "POST", variables: { plan: "pro", count: 2 }, timeoutMs: 5000, step: "h" }]);
    expect(out.state).toMatchObject({ step: "h", wait: { kind: "result", effect: "http" } });
    expect(JSON.stringify(out)).not.toContain("swordfish");
  });

  it("`body` limits the variables sent (missing ones as null, redacted ones still left out)", () => {
    const d = steps(
      { id: "q", type: "ask", text: "?", save: "word", secret: true, input: { type: "text" }, next: "h" },
      { id: "h", type: "http", url: "https://api.example.com/x", method: "GET", timeoutMs: 1500, body: ["plan", "word", "nope"] },
    );
    const out = say(d, start(d, ctx(), { plan: "pro", count: 2 }).state, "swordfish");
    expect(out.effects).toEqual([{ type: "http", url: "https://api.example.com/x", method: "GET", variables: { plan: "pro", nope: null }, timeoutMs: 1500, step: "h" }]);
  });

  it("contact details are not sent unless they are variables", () => {
    const d = steps({ id: "h", type: "http", url: "https://api.example.com/x" });
    expect(start(d).effects).toEqual([{ type: "http", url: "https://api.example.com/x", method: "POST", variables: {}, timeoutMs: 5000, step: "h" }]);
  });

  it("result ok → the data saved under `save`, readable as {{save.field}}, then next", () => {
    const out = result(def, pending(), { type: "http", ok: true, data: { status: "active", user: { tier: "gold" } } });
    expect(out.state.vars.api).toEqual({ status: "active", user: { tier: "gold" } });
    expect(texts(out)).toEqual(["status=active tier=gold"]);
    expect(out.done).toBe(true);
  });

  it("result ok without `save` stores nothing", () => {
    const d = steps({ id: "h", type: "http", url: "https://api.example.com/x", next: "e" }, { id: "e", type: "end", text: "ok" });
    const out = result(d, start(d).state, { type: "http", ok: true, data: { leaked: 1 } });
    expect(out.state.vars).toEqual({});
    expect(texts(out)).toEqual(["ok"]);
  });

  it("error → onError, with the error in http_error", () => {
    const out = result(def, pending(), { type: "http", ok: false, error: "timeout" });
    expect(texts(out)).toEqual(["failed: timeout"]);
    expect(out.state.vars.http_error).toBe("timeout");
  });

  it("error without onError → the error text and the end", () => {
    const d = steps({ id: "h", type: "http", url: "https://api.example.com/x", next: "e" }, { id: "e", type: "end", text: "ok" });
    const out = result(d, start(d).state, { type: "http", ok: false, error: "HTTP 500" });
    expect(texts(out)).toEqual(["Something went wrong on our side. Please try again later."]);
    expect(out.done).toBe(true);
  });
});
