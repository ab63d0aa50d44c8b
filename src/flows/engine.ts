import type { OutboundContent } from "../messaging/outbox";
import type { Condition, FlowDefinition, LocalizedText, Step } from "./schema";
import { regexTest } from "./regex";
import { localize, lookup, render, renderUrl } from "./text";

/**
 * The flow engine: a pure function of (definition, state, input, context) → (new state, effects). No I/O: the
 * conversation layer (src/flows/flow.handler.ts) executes the effects, feeds back the results of those that have
 * one (a code check) and saves the state in the same transaction as the message. An HTTP call's result arrives
 * later, as an input of its own (src/flows/flow-call.ts): the state waits for it meanwhile.
 */

export interface EngineState {
  flow: string;
  version: number;
  /** the step waiting (for input or for an effect's result); null when the flow has ended */
  step: string | null;
  vars: Record<string, unknown>;
  wait: Wait | null;
}

export type Wait =
  | { kind: "input"; retries: number }
  | { kind: "reply" }
  | { kind: "otp_code" }
  | { kind: "pin"; first?: string; retries?: number }
  | { kind: "result"; effect: ResultEffect["type"] }
  | { kind: "handoff" };

export type EngineInput =
  | { kind: "start"; vars?: Record<string, unknown> }
  | { kind: "message"; text: string | null; replyId: string | null }
  | { kind: "result"; result: EffectResult };

export interface EngineContext {
  now: Date;
  locale: string;
  /** Meta's 24-hour customer-service window is open: free-form messages allowed */
  windowOpen: boolean;
  contact: { name?: string | null; phone?: string | null };
  /** a keyed digest, to compare a PIN's two entries without keeping the PIN */
  digest(secret: string): string;
  /** why a PIN is too weak, or null */
  pinWeakness(pin: string): string | null;
}

export type ResultEffect =
  | { type: "otp_request"; purpose: string; channel?: "whatsapp" | "sms" | "voice"; to: string }
  | { type: "otp_check"; purpose: string; to: string; code: string }
  | { type: "pin_set"; pin: string }
  | { type: "pin_check"; pin: string }
  | { type: "http"; url: string; method: "GET" | "POST"; variables: Record<string, unknown>; timeoutMs: number; step: string }
  | { type: "action"; action: string; params: Record<string, string | number | boolean>; step: string };

export type Effect =
  | { type: "send"; content: OutboundContent; step: string }
  | { type: "skipped"; step: string; reason: "outside_window" }
  | { type: "handoff"; reason?: string }
  | { type: "start_flow"; flow: string }
  | ResultEffect;

export type EffectResult =
  | { type: "otp_request"; ok: true }
  | { type: "otp_request"; ok: false; error: string }
  | { type: "otp_check"; status: "approved" | "wrong" | "expired" | "locked"; attemptsLeft?: number }
  | { type: "pin_set"; ok: true }
  | { type: "pin_set"; ok: false; reason: string }
  | { type: "pin_check"; status: "approved" | "wrong" | "locked" | "not_set"; attemptsLeft?: number }
  | { type: "http"; ok: true; data: Record<string, unknown> }
  | { type: "http"; ok: false; error: string }
  | { type: "action"; ok: true; data?: Record<string, unknown> }
  | { type: "action"; ok: false; error: string };

export interface EngineOutput {
  state: EngineState;
  effects: Effect[];
  /** the flow has ended */
  done: boolean;
  /** the inbound message was a secret (code, PIN, secret answer): store it redacted */
  secretInput: boolean;
}

/** Loop guards: a run stops after this many steps, or when one step is entered this often (a goto cycle). */
const MAX_STEPS = 1000;
const MAX_VISITS_PER_STEP = 10;

const DEFAULTS = {
  invalid: { en_US: "Sorry, that doesn't look right.", es: "Perdona, eso no parece correcto.", pt_BR: "Desculpe, isso não parece certo." },
  gaveUp: { en_US: "Let's stop here. Write again whenever you like.", es: "Lo dejamos aquí. Escríbenos cuando quieras.", pt_BR: "Vamos parar por aqui. Escreva quando quiser." },
  wrongCode: { en_US: "That code is not right. {{tries}} left.", es: "Ese código no es correcto. Intentos restantes: {{tries}}.", pt_BR: "Esse código não está certo. Tentativas restantes: {{tries}}." },
  wrongCodeNoCount: { en_US: "That code is not right.", es: "Ese código no es correcto.", pt_BR: "Esse código não está certo." },
  pinWrongNoCount: { en_US: "Wrong PIN.", es: "PIN incorrecto.", pt_BR: "PIN incorreto." },
  expired: { en_US: "That code has expired.", es: "Ese código ha caducado.", pt_BR: "Esse código expirou." },
  locked: { en_US: "Too many wrong attempts. Please try again later.", es: "Demasiados intentos fallidos. Inténtalo más tarde.", pt_BR: "Tentativas erradas demais. Tente mais tarde." },
  notACode: { en_US: "Please send the code as digits.", es: "Envía el código en dígitos, por favor.", pt_BR: "Envie o código em dígitos, por favor." },
  pinMismatch: { en_US: "The two PINs differ. Let's start again.", es: "Los dos PIN no coinciden. Empecemos de nuevo.", pt_BR: "Os dois PINs são diferentes. Vamos recomeçar." },
  pinWrong: { en_US: "Wrong PIN. {{tries}} left.", es: "PIN incorrecto. Intentos restantes: {{tries}}.", pt_BR: "PIN incorreto. Tentativas restantes: {{tries}}." },
  pinFormat: { en_US: "A PIN is 6 digits.", es: "Un PIN tiene 6 dígitos.", pt_BR: "Um PIN tem 6 dígitos." },
  error: { en_US: "Something went wrong on our side. Please try again later.", es: "Algo salió mal. Inténtalo más tarde.", pt_BR: "Algo deu errado. Tente mais tarde." },
  choose: { en_US: "Choose", es: "Elegir", pt_BR: "Escolher" },
} satisfies Record<string, LocalizedText>;

export const REDACTED = "[redacted]";

/** Variables the engine sets itself to report an outcome; not business data. */
export const INTERNAL_VARS = new Set(["otp_status", "otp_error", "pin_status", "http_error", "action_error"]);

export function startState(def: FlowDefinition, version: number, vars: Record<string, unknown> = {}): EngineState {
  return { flow: def.name, version, step: null, vars: { ...def.variables, ...vars }, wait: null };
}

/** Advances a flow by one input. */
export function step(def: FlowDefinition, state: EngineState, input: EngineInput, ctx: EngineContext): EngineOutput {
  const run = new Run(def, structuredClone(state), ctx);
  return run.handle(input);
}

class Run {
  private readonly effects: Effect[] = [];
  private secretInput = false;
  private readonly byId: Map<string, Step>;

  constructor(
    private readonly def: FlowDefinition,
    private readonly state: EngineState,
    private readonly ctx: EngineContext,
  ) {
    this.byId = new Map(def.steps.map((s) => [s.id, s]));
  }

  private get vars(): Record<string, unknown> {
    return { ...this.state.vars, contact: { name: this.ctx.contact.name ?? "", phone: this.ctx.contact.phone ?? "" } };
  }

  private text(t: LocalizedText, extra: Record<string, unknown> = {}): string {
    return render(t, this.ctx.locale, { ...this.vars, ...extra });
  }

  private out(done = false): EngineOutput {
    if (done) {
      this.state.step = null;
      this.state.wait = null;
    }
    return { state: this.state, effects: this.effects, done: done || this.state.step === null, secretInput: this.secretInput };
  }

  handle(input: EngineInput): EngineOutput {
    if (input.kind === "start") {
      Object.assign(this.state.vars, input.vars ?? {});
      return this.go(this.def.start ?? this.def.steps[0]!.id);
    }
    const current = this.state.step ? this.byId.get(this.state.step) : undefined;
    if (!current || !this.state.wait) return this.out(true);
    if (input.kind === "result") return this.onResult(current, input.result);
    return this.onMessage(current, input.text, input.replyId);
  }

  /** Runs steps from `id` until one waits or the flow ends. */
  private go(id: string | undefined): EngineOutput {
    let next = id;
    const visits = new Map<string, number>();
    for (let n = 0; n < MAX_STEPS; n++) {
      if (!next) return this.out(true);
      const s = this.byId.get(next);
      if (!s) return this.out(true);
      const seen = (visits.get(s.id) ?? 0) + 1;
      if (seen > MAX_VISITS_PER_STEP) return this.out(true);
      visits.set(s.id, seen);
      this.state.step = s.id;
      this.state.wait = null;
      const result = this.enter(s);
      if (result === "wait") return this.out();
      if (result === "end") return this.out(true);
      next = result;
    }
    return this.out(true);
  }

  /** Executes a step on arrival: returns the next step's id, "wait", or "end". */
  private enter(s: Step): string | "wait" | "end" | undefined {
    switch (s.type) {
      case "send": {
        this.send(s.id, s);
        const waitsForReply = (s.buttons?.some((b) => b.next) ?? false) || (s.list?.sections.some((sec) => sec.rows.some((r) => r.next)) ?? false);
        if (waitsForReply) {
          this.state.wait = { kind: "reply" };
          return "wait";
        }
        return s.next ?? "end";
      }
      case "ask":
        this.ask(s);
        this.state.wait = { kind: "input", retries: s.retries };
        return "wait";
      case "branch":
        return s.cases.find((c) => matches(c.when, this.vars))?.next ?? s.default;
      case "set":
        for (const [k, v] of Object.entries(s.values)) this.state.vars[k] = typeof v === "string" ? render(v, this.ctx.locale, this.vars) : v;
        return s.next ?? "end";
      case "otp_request":
        return this.waitFor({ type: "otp_request", purpose: s.purpose, channel: s.channel, to: this.target(s.to) });
      case "otp_verify":
        this.sendText(s.id, this.text(s.text));
        this.state.wait = { kind: "otp_code" };
        return "wait";
      case "pin_set":
        this.sendText(s.id, this.text(s.text));
        this.state.wait = { kind: "pin" };
        return "wait";
      case "pin_verify":
        this.sendText(s.id, this.text(s.text));
        this.state.wait = { kind: "pin" };
        return "wait";
      case "http": {
        // the engine's own bookkeeping (otp_status, pin_status, …) and secret answers are never sent
        const names = (s.body ?? Object.keys(this.state.vars)).filter((k) => !INTERNAL_VARS.has(k));
        const variables = Object.fromEntries(names.filter((k) => this.state.vars[k] !== REDACTED).map((k) => [k, this.state.vars[k] ?? null]));
        // values are percent-encoded as URL components: a customer's answer never changes the path or adds a parameter
        const url = renderUrl(s.url, this.vars);
        if (url === null) {
          this.state.vars.http_error = "invalid_url";
          if (s.onError) return s.onError;
          this.sendText(s.id, this.text(DEFAULTS.error));
          return "end";
        }
        return this.waitFor({ type: "http", url, method: s.method, variables, timeoutMs: s.timeoutMs, step: s.id });
      }
      case "action": {
        const params = Object.fromEntries(Object.entries(s.params).map(([k, v]) => [k, typeof v === "string" ? render(v, this.ctx.locale, this.vars) : v]));
        return this.waitFor({ type: "action", action: s.action, params, step: s.id });
      }
      case "handoff":
        if (s.text) this.sendText(s.id, this.text(s.text));
        this.effects.push({ type: "handoff", reason: s.reason });
        this.state.wait = { kind: "handoff" };
        return "wait";
      case "goto":
        if (s.flow) {
          this.effects.push({ type: "start_flow", flow: s.flow });
          return "end";
        }
        return s.step;
      case "end":
        if (s.text) this.sendText(s.id, this.text(s.text));
        return "end";
    }
  }

  private waitFor(effect: ResultEffect): "wait" {
    this.effects.push(effect);
    this.state.wait = { kind: "result", effect: effect.type };
    return "wait";
  }

  private target(to: string | undefined): string {
    return to ? render(to, this.ctx.locale, this.vars) : (this.ctx.contact.phone ?? "");
  }

  // --- input ---------------------------------------------------------------------------------------------------

  private onMessage(s: Step, text: string | null, replyId: string | null): EngineOutput {
    const wait = this.state.wait!;
    if (wait.kind === "handoff" || wait.kind === "result") return this.out(); // quiet / still working
    if (wait.kind === "reply" && s.type === "send") {
      const target =
        s.buttons?.find((b) => b.id === replyId || (text && norm(localize(b.title, this.ctx.locale)) === norm(text))) ??
        s.list?.sections.flatMap((sec) => sec.rows).find((r) => r.id === replyId || (text && norm(localize(r.title, this.ctx.locale)) === norm(text)));
      if (!target) {
        this.send(s.id, s); // show the options again
        return this.out();
      }
      this.state.vars[choiceVar(s.id)] = target.id;
      return this.go(target.next ?? s.next);
    }
    if (wait.kind === "input" && s.type === "ask") return this.onAnswer(s, text, replyId, wait.retries);
    if (wait.kind === "otp_code" && (s.type === "otp_verify")) {
      // whatever is typed here may hold the code: the message is stored redacted either way
      this.secretInput = true;
      const code = text?.replace(/[\s-]/g, "") ?? "";
      if (!/^\d{4,10}$/.test(code)) {
        this.sendText(s.id, this.text(DEFAULTS.notACode));
        return this.out();
      }
      this.secretInput = true;
      this.effects.push({ type: "otp_check", purpose: s.purpose, to: this.target(s.to), code });
      this.state.wait = { kind: "result", effect: "otp_check" };
      return this.out();
    }
    if (wait.kind === "pin" && (s.type === "pin_set" || s.type === "pin_verify")) {
      this.secretInput = true;
      const pin = text?.replace(/\s/g, "") ?? "";
      if (!/^\d{6}$/.test(pin)) {
        this.sendText(s.id, this.text(DEFAULTS.pinFormat));
        return this.out();
      }
      if (s.type === "pin_verify") {
        this.effects.push({ type: "pin_check", pin });
        this.state.wait = { kind: "result", effect: "pin_check" };
        return this.out();
      }
      if (!wait.first) {
        const weak = this.ctx.pinWeakness(pin);
        if (weak) {
          this.sendText(s.id, s.weakText ? this.text(s.weakText, { reason: weak }) : weak);
          this.sendText(s.id, this.text(s.text));
          return this.out();
        }
        this.state.wait = { kind: "pin", first: this.ctx.digest(pin) };
        this.sendText(s.id, this.text(s.confirmText));
        return this.out();
      }
      if (this.ctx.digest(pin) !== wait.first) {
        this.sendText(s.id, this.text(s.mismatchText ?? DEFAULTS.pinMismatch));
        this.sendText(s.id, this.text(s.text));
        this.state.wait = { kind: "pin" };
        return this.out();
      }
      this.effects.push({ type: "pin_set", pin });
      this.state.wait = { kind: "result", effect: "pin_set" };
      return this.out();
    }
    return this.out();
  }

  private onAnswer(s: Extract<Step, { type: "ask" }>, text: string | null, replyId: string | null, retries: number): EngineOutput {
    const value = validateAnswer(s, text, replyId, this.ctx.locale);
    if (s.secret) this.secretInput = true;
    if (value === null) {
      if (retries <= 0) {
        if (s.onInvalid) return this.go(s.onInvalid);
        this.sendText(s.id, this.text(DEFAULTS.gaveUp));
        return this.out(true);
      }
      this.sendText(s.id, this.text(s.invalidText ?? DEFAULTS.invalid));
      this.ask(s);
      this.state.wait = { kind: "input", retries: retries - 1 };
      return this.out();
    }
    this.state.vars[s.save] = s.secret ? REDACTED : value.value;
    return this.go(value.next ?? s.next);
  }

  private onResult(s: Step, r: EffectResult): EngineOutput {
    switch (r.type) {
      case "otp_request":
        if (s.type !== "otp_request") return this.out(true);
        if (r.ok) return this.go(s.next);
        this.state.vars.otp_error = r.error;
        if (s.onError) return this.go(s.onError);
        this.sendText(s.id, this.text(DEFAULTS.error));
        return this.out(true);
      case "otp_check": {
        if (s.type !== "otp_verify") return this.out(true);
        this.state.vars.otp_status = r.status;
        if (r.status === "approved") return this.go(s.approved);
        if (r.status === "wrong") {
          if (s.wrong) return this.go(s.wrong);
          this.sendText(s.id, r.attemptsLeft === undefined ? this.text(DEFAULTS.wrongCodeNoCount) : this.text(DEFAULTS.wrongCode, { tries: r.attemptsLeft }));
          this.state.wait = { kind: "otp_code" };
          return this.out();
        }
        const branch = r.status === "expired" ? s.expired : s.locked;
        if (branch) return this.go(branch);
        this.sendText(s.id, this.text(r.status === "expired" ? DEFAULTS.expired : DEFAULTS.locked));
        return this.out(true);
      }
      case "pin_set":
        if (s.type !== "pin_set") return this.out(true);
        if (r.ok) return this.go(s.next);
        this.sendText(s.id, s.weakText ? this.text(s.weakText, { reason: r.reason }) : r.reason);
        this.sendText(s.id, this.text(s.text));
        this.state.wait = { kind: "pin" };
        return this.out();
      case "pin_check": {
        if (s.type !== "pin_verify") return this.out(true);
        this.state.vars.pin_status = r.status;
        if (r.status === "approved") return this.go(s.approved);
        if (r.status === "wrong") {
          if (s.wrong) return this.go(s.wrong);
          this.sendText(s.id, r.attemptsLeft === undefined ? this.text(DEFAULTS.pinWrongNoCount) : this.text(DEFAULTS.pinWrong, { tries: r.attemptsLeft }));
          this.state.wait = { kind: "pin" };
          return this.out();
        }
        const branch = r.status === "locked" ? s.locked : s.notSet;
        if (branch) return this.go(branch);
        this.sendText(s.id, this.text(r.status === "locked" ? DEFAULTS.locked : DEFAULTS.error));
        return this.out(true);
      }
      case "action":
        if (s.type !== "action") return this.out(true);
        if (r.ok) {
          if (s.save) this.state.vars[s.save] = r.data ?? {};
          return this.go(s.next);
        }
        this.state.vars.action_error = r.error;
        if (s.onError) return this.go(s.onError);
        this.sendText(s.id, this.text(DEFAULTS.error));
        return this.out(true);
      case "http":
        if (s.type !== "http") return this.out(true);
        if (r.ok) {
          if (s.save) this.state.vars[s.save] = r.data;
          return this.go(s.next);
        }
        this.state.vars.http_error = r.error;
        if (s.onError) return this.go(s.onError);
        this.sendText(s.id, this.text(DEFAULTS.error));
        return this.out(true);
    }
  }

  // --- output --------------------------------------------------------------------------------------------------

  private sendText(stepId: string, body: string): void {
    this.emit(stepId, { type: "text", text: { body: body.slice(0, 4096), preview_url: false } });
  }

  private emit(stepId: string, content: OutboundContent, outsideWindow?: OutboundContent): void {
    if (content.type === "template" || this.ctx.windowOpen) {
      this.effects.push({ type: "send", content, step: stepId });
    } else if (outsideWindow) {
      this.effects.push({ type: "send", content: outsideWindow, step: stepId });
    } else {
      this.effects.push({ type: "skipped", step: stepId, reason: "outside_window" });
    }
  }

  private send(stepId: string, s: Extract<Step, { type: "send" }>): void {
    const fallback = s.templateOutsideWindow ? this.template(s.templateOutsideWindow) : undefined;
    if (s.template) return this.emit(stepId, this.template(s.template));
    const body = this.text(s.text!);
    if (s.buttons) {
      return this.emit(
        stepId,
        {
          type: "interactive",
          interactive: {
            type: "button",
            body: { text: body.slice(0, 1024) },
            action: { buttons: s.buttons.map((b) => ({ type: "reply", reply: { id: b.id, title: this.text(b.title).slice(0, 20) } })) },
          },
        },
        fallback,
      );
    }
    if (s.list) {
      return this.emit(
        stepId,
        {
          type: "interactive",
          interactive: {
            type: "list",
            body: { text: body.slice(0, 4096) },
            action: {
              button: this.text(s.list.button).slice(0, 20),
              sections: s.list.sections.map((sec) => ({
                ...(sec.title ? { title: this.text(sec.title).slice(0, 24) } : {}),
                rows: sec.rows.map((r) => ({ id: r.id, title: this.text(r.title).slice(0, 24), ...(r.description ? { description: this.text(r.description).slice(0, 72) } : {}) })),
              })),
            },
          },
        },
        fallback,
      );
    }
    this.emit(stepId, { type: "text", text: { body: body.slice(0, 4096), preview_url: false } }, fallback);
  }

  private template(t: { name: string; language: string; parameters: string[] }): OutboundContent {
    const params = t.parameters.map((p) => ({ type: "text", text: render(p, this.ctx.locale, this.vars) }));
    return { type: "template", template: { name: t.name, language: { code: t.language }, components: params.length ? [{ type: "body", parameters: params }] : [] } };
  }

  private ask(s: Extract<Step, { type: "ask" }>): void {
    const body = this.text(s.text);
    if (s.input.type !== "choice") return this.sendText(s.id, body);
    const choices = s.input.choices;
    if (choices.length <= 3) {
      this.emit(s.id, {
        type: "interactive",
        interactive: { type: "button", body: { text: body.slice(0, 1024) }, action: { buttons: choices.map((c) => ({ type: "reply", reply: { id: c.id, title: this.text(c.title).slice(0, 20) } })) } },
      });
    } else {
      this.emit(s.id, {
        type: "interactive",
        interactive: {
          type: "list",
          body: { text: body.slice(0, 4096) },
          action: { button: this.text(DEFAULTS.choose), sections: [{ rows: choices.map((c) => ({ id: c.id, title: this.text(c.title).slice(0, 24) })) }] },
        },
      });
    }
  }
}

function norm(s: string): string {
  return s.trim().toLowerCase();
}

/** The answer's stored value and, for a choice, where it leads; null when invalid. */
export function validateAnswer(s: Extract<Step, { type: "ask" }>, text: string | null, replyId: string | null, locale: string): { value: string; next?: string } | null {
  const input = s.input;
  const raw = (text ?? "").trim();
  switch (input.type) {
    case "choice": {
      const byIndex = /^\d+$/.test(raw) ? input.choices[Number(raw) - 1] : undefined;
      const c = input.choices.find((c) => c.id === replyId || norm(c.id) === norm(raw) || norm(localize(c.title, locale)) === norm(raw)) ?? byIndex;
      return c ? { value: c.value ?? c.id, next: c.next } : null;
    }
    case "digits": {
      const d = raw.replace(/[\s-]/g, "");
      return /^\d+$/.test(d) && d.length >= input.min && d.length <= input.max ? { value: d } : null;
    }
    case "email":
      return /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{2,}$/.test(raw) && raw.length <= 254 ? { value: raw.toLowerCase() } : null;
    case "text": {
      if (raw.length < input.min || raw.length > input.max) return null;
      if (input.pattern && !regexTest(input.pattern, raw, { ignoreCase: false })) return null;
      return { value: raw };
    }
  }
}

export function matches(c: Condition, vars: Record<string, unknown>): boolean {
  const v = lookup(vars, c.var);
  if (c.exists !== undefined && (v !== undefined && v !== null && v !== "") !== c.exists) return false;
  if (c.equals !== undefined && String(v) !== String(c.equals)) return false;
  if (c.in !== undefined && !c.in.map(String).includes(String(v))) return false;
  if (c.matches !== undefined) {
    if (!regexTest(c.matches, String(v ?? ""), { ignoreCase: true })) return false;
  }
  if (c.gt !== undefined || c.lt !== undefined) {
    // an empty or missing value is no number (Number("") would be 0)
    const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
    if (!Number.isFinite(n)) return false;
    if (c.gt !== undefined && !(n > c.gt)) return false;
    if (c.lt !== undefined && !(n < c.lt)) return false;
  }
  return true;
}

/** The variable a reply to a send step's buttons is kept in: `<step id>_choice`, with - and . as _. */
export function choiceVar(stepId: string): string {
  return `${stepId.replace(/[^A-Za-z0-9_]/g, "_")}_choice`;
}
