import { randomUUID } from "node:crypto";
import type { PrismaClient } from "../db/prisma";
import { recordAudit } from "../audit/audit";
import { callbackSecret } from "../events/callback";
import type { MessageHandler, RouteContext, RouteResult } from "../conversation/router";
import { textOf } from "../conversation/router";
import type { InboundMessage } from "../ingest/envelope";
import type { OutboundContent } from "../messaging/outbox";
import type { Logger } from "../observability/logger";
import { OtpError } from "../otp/errors";
import { localeFor } from "../otp/locale";
import { normalizeNumber } from "../otp/phone";
import type { VerificationService } from "../otp/verification.service";
import type { PinService } from "../pin/pin.service";
import type { Keyring } from "../shared/crypto";
import { assertNoSecrets, SecretInDataError } from "../shared/no-secrets";
import { contactLockKey } from "../conversation/inbound-handler";
import { readSettings } from "../tenants/settings";
import { step as engineStep, startState, type Effect, type EffectResult, type EngineContext, type EngineInput, type EngineOutput, type EngineState } from "./engine";
import type { FlowStore } from "./flow-store";
import { pendingCallOf, type FlowCall, type FlowCalls, type PendingCall } from "./flow-call";
import type { FlowDefinition } from "./schema";
import { matchTrigger } from "./triggers";
import { SENSITIVE_ACTIONS } from "../journeys/actions";

/** The code purpose of the recover journey (flows/recover.yaml): sent even to a blocked number when the contact has a PIN. */
export const RECOVERY_PURPOSE = "account_recovery";

/** The built-in journey a contact is sent through while `reverifyRequiredAt` is set. */
export const REVERIFY_FLOW = "reverify";

/** Words that work from any step. */
export const GLOBAL_COMMANDS = {
  cancel: ["cancel", "stop", "cancelar", "parar", "salir", "sair"],
  menu: ["menu", "menú", "start", "inicio", "início"],
  help: ["help", "ayuda", "ajuda"],
} as const;

const CANCELED = {
  en_US: "OK, stopped. Write any time to start again.",
  es: "De acuerdo, lo dejamos. Escribe cuando quieras para empezar de nuevo.",
  pt_BR: "Certo, paramos. Escreva quando quiser para recomeçar.",
};

/** What an action step may look at, and its answer (src/journeys/actions.ts registers the actions). */
export interface ActionContext {
  tenant: RouteContext["tenant"];
  contact: RouteContext["contact"];
  now: Date;
  flow: string;
  step: string;
  locale: string;
  /** the API actor that started this session (POST /v1/flows/{name}/start), for the audit; absent when the customer did */
  startedBy?: string;
}
export type ActionResult = { ok: true; data?: Record<string, unknown> } | { ok: false; error: string };
export type ActionExecutor = (ctx: ActionContext, params: Record<string, string | number | boolean>) => Promise<ActionResult>;

export interface FlowHandlerDeps {
  prisma: PrismaClient;
  keyring: Keyring;
  flows: FlowStore;
  verifications: VerificationService;
  pins: PinService;
  logger: Logger;
  /** the actions `action` steps can run; an unregistered action takes the step's error branch */
  actions?: Record<string, ActionExecutor>;
  /** development mode (config isDevMode): `http` steps may call an allow-listed loopback host over http */
  dev?: boolean;
  /** where `http` steps go: a job each, called outside the message's transaction (src/flows/flow-call.ts) */
  calls: Pick<FlowCalls, "enqueue">;
}

function replyIdOf(message: InboundMessage): string | null {
  const m = message as Record<string, any>;
  if (message.type === "button") return typeof m.button?.payload === "string" ? m.button.payload : null;
  if (message.type === "interactive") return m.interactive?.button_reply?.id ?? m.interactive?.list_reply?.id ?? null;
  return null;
}

/**
 * Runs the tenant's flows in the chat: continues the contact's running flow (on the version it started with),
 * or starts the flow a message triggers. The engine is pure; effects are executed here: sends become replies,
 * code requests and checks go to the OTP engine, PINs to the PIN service. An HTTP step is not called here: the
 * session waits for it and a job calls the business after the message commits (src/flows/flow-call.ts), whose
 * answer comes back through `resume`.
 */
export class FlowHandler implements MessageHandler {
  readonly name = "flows";

  constructor(private readonly deps: FlowHandlerDeps) {}

  /** Effects run in their own transactions (the OTP engine, PINs): the message's transaction is not needed. */
  usesTx(): boolean {
    return false;
  }

  async handle(ctx: RouteContext): Promise<RouteResult | null> {
    const session = ctx.session;
    if (session.handoffAt) return { replies: [] }; // with a person: the bot stays quiet
    const text = textOf(ctx.message);
    const replyId = replyIdOf(ctx.message);
    const settings = readSettings(ctx.tenant.settings);
    const locale = localeFor(ctx.contact.locale, countryOf(ctx.contact.phoneE164), settings.flows.defaultLocale);
    const engineCtx = this.context(ctx, locale, settings.flows.defaultLocale);
    const word = text?.trim().toLowerCase() ?? "";
    // global commands are typed words: a button that happens to be titled "Cancel" is the button's
    const typed = ctx.message.type === "text";

    const running = session.flow && session.step && session.flowVersion !== null && (!session.expiresAt || session.expiresAt > ctx.now);
    // a required re-verification comes before anything else the contact asks for: one the business or a number
    // change asked for, or one a rule calls for (a code of this number locked by wrong guesses since it last verified)
    const mustReverify = ctx.contact.reverifyRequiredAt || (await this.lockedSinceVerified(ctx));
    if (mustReverify && !(running && session.flow === REVERIFY_FLOW)) {
      const reverify = (await this.deps.flows.liveDefinitions(ctx.tenant.id)).find((f) => f.name === REVERIFY_FLOW);
      if (reverify) {
        return this.drive(ctx, reverify.definition, startState(reverify.definition, reverify.version), { kind: "start" }, engineCtx, settings.flows.sessionTimeoutMinutes);
      }
    }
    if (running) {
      if (typed && (GLOBAL_COMMANDS.cancel as readonly string[]).includes(word)) {
        return { replies: [{ type: "text", text: { body: pickLocale(CANCELED, locale), preview_url: false } }], session: ended() };
      }
      const def = await this.deps.flows.definitionAt(ctx.tenant.id, session.flow!, session.flowVersion!);
      const menuOrHelp =
        typed &&
        ((GLOBAL_COMMANDS.menu as readonly string[]).includes(word) || (GLOBAL_COMMANDS.help as readonly string[]).includes(word)) &&
        matchTrigger(await this.deps.flows.liveDefinitions(ctx.tenant.id), { text, replyId: null, isNewContact: false }) !== null;
      if (def && !menuOrHelp) {
        const state: EngineState = {
          flow: session.flow!,
          version: session.flowVersion!,
          step: session.step,
          vars: session.variables,
          wait: (session.state?.wait as EngineState["wait"]) ?? null,
        };
        return this.drive(ctx, def, state, { kind: "message", text, replyId }, engineCtx, settings.flows.sessionTimeoutMinutes, guardOf(session.state), pendingCallOf(session.state));
      }
      // the flow was deleted, or the contact asked for the menu: fall through to triggers
    }

    const live = await this.deps.flows.liveDefinitions(ctx.tenant.id);
    const hit = matchTrigger(live, { text: word === "" ? null : text, replyId, isNewContact: ctx.isNewContact });
    if (!hit) return running ? { replies: [], session: ended() } : null;
    return this.drive(ctx, hit.definition, startState(hit.definition, hit.version), { kind: "start" }, engineCtx, settings.flows.sessionTimeoutMinutes);
  }

  /** The rule: a verification of this number ended locked (too many wrong codes) in the last day, after its last verification. */
  private async lockedSinceVerified(ctx: RouteContext): Promise<boolean> {
    if (!ctx.contact.phoneE164) return false;
    if (ctx.contact.lockedSinceVerified !== undefined) return ctx.contact.lockedSinceVerified; // loaded with the contact
    const since = new Date(Math.max(ctx.now.getTime() - 24 * 3600_000, ctx.contact.verifiedAt?.getTime() ?? 0));
    const locked = await this.deps.prisma.verification.findFirst({
      where: { tenantId: ctx.tenant.id, to: ctx.contact.phoneE164, status: "max_attempts_reached", endedAt: { gt: since } },
      select: { id: true },
    });
    return locked !== null;
  }

  /** Starts a flow for a contact from the API (with variables), outside any inbound message. */
  async startFor(ctx: RouteContext, def: FlowDefinition, version: number, vars: Record<string, unknown>, startedBy: string): Promise<RouteResult> {
    const settings = readSettings(ctx.tenant.settings);
    const locale = localeFor(ctx.contact.locale, countryOf(ctx.contact.phoneE164), settings.flows.defaultLocale);
    // started by the business's backend, not by the customer: no sensitive action until the customer verifies here
    return this.drive(ctx, def, startState(def, version), { kind: "start", vars }, this.context(ctx, locale, settings.flows.defaultLocale), settings.flows.sessionTimeoutMinutes, { apiStart: true, verified: false, startedBy });
  }

  /**
   * The answer of an `http` step's call (src/flows/flow-call.ts) as the engine's input. Null when the session no
   * longer waits for this very call (cancelled, expired, handed off, a newer execution): the answer is dropped.
   */
  async resume(ctx: RouteContext, callId: string, result: Extract<EffectResult, { type: "http" }>): Promise<RouteResult | null> {
    const session = ctx.session;
    const pending = pendingCallOf(session.state);
    const wait = session.state?.wait as EngineState["wait"] | undefined;
    if (!pending || pending.id !== callId || session.step !== pending.step || wait?.kind !== "result" || wait.effect !== "http") return null;
    if (session.handoffAt || !session.flow || session.flowVersion === null || (session.expiresAt && session.expiresAt <= ctx.now)) return null;
    const def = await this.deps.flows.definitionAt(ctx.tenant.id, session.flow, session.flowVersion);
    if (!def) return null;
    const settings = readSettings(ctx.tenant.settings);
    const locale = localeFor(ctx.contact.locale, countryOf(ctx.contact.phoneE164), settings.flows.defaultLocale);
    const state: EngineState = { flow: session.flow, version: session.flowVersion, step: session.step, vars: session.variables, wait };
    return this.drive(ctx, def, state, { kind: "result", result }, this.context(ctx, locale, settings.flows.defaultLocale), settings.flows.sessionTimeoutMinutes, guardOf(session.state));
  }

  private context(ctx: RouteContext, locale: string, _fallback: string): EngineContext {
    const windowOpen = !!ctx.contact.lastInboundAt && ctx.now.getTime() - ctx.contact.lastInboundAt.getTime() < 24 * 3600_000;
    return {
      now: ctx.now,
      locale,
      windowOpen,
      contact: { name: ctx.contact.profileName, phone: ctx.contact.phoneE164 },
      digest: (secret) => this.deps.keyring.hmac("otp-hash", "pin-entry", ctx.contact.id, secret),
      pinWeakness: (pin) => this.deps.pins.isWeak(pin, { phoneE164: ctx.contact.phoneE164 ?? undefined }),
    };
  }

  /** Runs the engine, executing effects and feeding their results back, until it waits for the customer. */
  private async drive(
    ctx: RouteContext, def: FlowDefinition, state: EngineState, input: EngineInput, engineCtx: EngineContext, timeoutMinutes: number,
    sessionGuard: SessionGuard = { apiStart: false, verified: false },
    /** the call the session waited for before this input: still awaited while the step still waits for it */
    priorCall: PendingCall | null = null,
  ): Promise<RouteResult> {
    const replies: OutboundContent[] = [];
    let secret = false;
    let handoff = false;
    let current: FlowDefinition = def;
    /** an http step reached: the session waits for it, its job is written after commit */
    let call: FlowCall | null = null;
    let out: EngineOutput = engineStep(current, state, input, engineCtx);
    for (let guard = 0; guard < 50; guard++) {
      secret ||= out.secretInput;
      let result: EffectResult | null = null;
      let startFlow: string | null = null;
      for (const e of out.effects) {
        if (e.type === "send") replies.push(this.localTemplate(e.content, ctx, engineCtx.locale));
        else if (e.type === "skipped") {
          this.deps.logger.info({ flow: current.name, step: e.step }, "flow message skipped: outside the 24-hour window and no template");
          await recordAudit(this.deps.prisma, {
            tenantId: ctx.tenant.id,
            type: "flow.message_skipped",
            actor: `flow:${current.name}`,
            subject: ctx.contact.phoneE164 ?? ctx.contact.id,
            data: { flow: current.name, step: e.step, reason: e.reason },
            at: ctx.now,
          });
        }
        else if (e.type === "handoff") handoff = true;
        else if (e.type === "start_flow") startFlow = e.flow;
        else if (e.type === "http") {
          const r = this.prepareCall(ctx, current, e);
          if ("error" in r) result = { type: "http", ok: false, error: r.error };
          else call = r;
        } else result = await this.execute(ctx, current, e, sessionGuard);
      }
      if (startFlow) {
        const next = (await this.deps.flows.liveDefinitions(ctx.tenant.id)).find((f) => f.name === startFlow);
        if (!next) break;
        current = next.definition;
        out = engineStep(current, startState(current, next.version, out.state.vars), { kind: "start" }, engineCtx);
        continue;
      }
      if (!result) break;
      out = engineStep(current, out.state, { kind: "result", result }, engineCtx);
    }
    const s = out.state;
    const waitsForCall = (id: string | undefined) => id !== undefined && !out.done && s.wait?.kind === "result" && s.wait.effect === "http" && s.step === id;
    const awaited: PendingCall | null = call ? { id: call.id, step: call.step, job: call } : priorCall && waitsForCall(priorCall.step) ? priorCall : null;
    // a message while the call is awaited writes its job again (a no-op while it exists): repairs a job Redis
    // refused after the commit that reached the step
    const job = call ?? awaited?.job ?? null;
    // a flow may set the conversation language: `set: {locale: "es"}`
    const chosen = s.vars.locale;
    if (typeof chosen === "string" && /^[a-z]{2,3}(_[A-Z]{2})?$/.test(chosen) && chosen !== ctx.contact.locale) {
      await this.deps.prisma.contact.update({ where: { id: ctx.contact.id }, data: { locale: chosen } });
    }
    return {
      replies,
      redactInbound: secret,
      session: out.done
        ? ended()
        : {
            flow: s.flow,
            flowVersion: s.version,
            step: s.step,
            variables: s.vars,
            expiresAt: new Date(ctx.now.getTime() + timeoutMinutes * 60_000),
            state: {
              wait: s.wait,
              ...(sessionGuard.apiStart ? { apiStart: true, verifiedInChat: sessionGuard.verified, startedBy: sessionGuard.startedBy } : {}),
              ...(awaited ? { call: awaited } : {}),
            },
            ...(handoff ? { handoffAt: ctx.now } : {}),
          },
      ...(job ? { afterCommit: enqueue(this.deps.calls, job) } : {}),
    };
  }

  /**
   * An http step's call, to run after this transaction commits: a new Idempotency-Key for this execution. What can
   * be refused now is (no signing secret, a variable that looks like a secret): the step takes its error branch.
   */
  private prepareCall(ctx: RouteContext, def: FlowDefinition, e: Extract<Effect, { type: "http" }>): FlowCall | { error: string } {
    if (!callbackSecret(this.deps.keyring, ctx.tenant.settings)) return { error: "no_signing_secret" };
    const contact = { id: ctx.contact.id, phone: ctx.contact.phoneE164, name: ctx.contact.profileName };
    try {
      // never into the job (nor to the business): a variable that looks like a secret
      assertNoSecrets({ contact, variables: e.variables }, { what: `http step ${def.name}/${e.step}` });
    } catch (err) {
      if (err instanceof SecretInDataError) return { error: "secret_in_variables" };
      throw err;
    }
    const stepDef = def.steps.find((st) => st.id === e.step);
    const retries = stepDef?.type === "http" ? stepDef.retries : 0;
    const contactKey = ctx.contact.userId ?? ctx.contact.waId ?? ctx.contact.id;
    return {
      id: randomUUID(),
      tenantId: ctx.tenant.id,
      phoneNumberId: ctx.tenant.phoneNumberId,
      contactId: ctx.contact.id,
      sessionId: ctx.session.id,
      lockKey: contactLockKey(ctx.tenant.phoneNumberId, contactKey).toString(),
      flow: def.name,
      step: e.step,
      url: e.url,
      method: e.method,
      timeoutMs: e.timeoutMs,
      retries,
      body: { contact, variables: e.variables },
    };
  }

  /** A template named by a flow goes out as the tenant's approved template for the contact's locale, when set. */
  private localTemplate(content: OutboundContent, ctx: RouteContext, locale: string): OutboundContent {
    if (content.type !== "template") return content;
    const t = content.template as { name: string; language: { code: string } };
    const byLocale = readSettings(ctx.tenant.settings).flows.templates[t.name];
    if (!byLocale) return content;
    const hit = byLocale[locale] ?? Object.entries(byLocale).find(([k]) => k.split("_")[0] === locale.split("_")[0])?.[1];
    return hit ? { ...content, template: { ...t, name: hit.name, language: { code: hit.language } } } : content;
  }

  private async execute(ctx: RouteContext, def: FlowDefinition, e: Exclude<Effect, { type: "send" | "skipped" | "handoff" | "start_flow" | "http" }>, guard: SessionGuard): Promise<EffectResult> {
    const who = { tenantId: ctx.tenant.id, actor: `flow:${def.name}:${ctx.contact.id}` };
    switch (e.type) {
      case "otp_request":
        try {
          // a blocked number ("not me") stays recoverable by its owner: the recovery code of a contact with a PIN goes
          // out anyway, and the PIN (asked next by the recover journey; revoke_logins requires it) protects it
          const allowBlocked = e.purpose === RECOVERY_PURPOSE && e.to === ctx.contact.phoneE164 && (await this.deps.pins.has(this.deps.prisma, ctx.contact.id));
          await this.deps.verifications.create(who, { to: e.to, purpose: e.purpose, channel: e.channel, locale: ctx.contact.locale ?? undefined, allowBlocked });
          return { type: "otp_request", ok: true };
        } catch (err) {
          if (err instanceof OtpError) return { type: "otp_request", ok: false, error: err.code };
          throw err;
        }
      case "otp_check":
        try {
          // the flow asks for the PIN itself (pin_status / pin_verify steps), as the built-in journeys do
          const { verification, valid } = await this.deps.verifications.check(who, { to: e.to, purpose: e.purpose, code: e.code, pinByFlow: true });
          if (valid) {
            // the customer proved this chat's own number: an API-started session may now run sensitive actions
            if (e.to === ctx.contact.phoneE164) guard.verified = true;
            return { type: "otp_check", status: "approved" };
          }
          if (verification.status === "max_attempts_reached") return { type: "otp_check", status: "locked" };
          return { type: "otp_check", status: "wrong", attemptsLeft: verification.maxAttempts - verification.attempts };
        } catch (err) {
          if (err instanceof OtpError && err.code === "verification_not_found") return { type: "otp_check", status: "expired" };
          if (err instanceof OtpError && err.code === "rate_limited") return { type: "otp_check", status: "locked" };
          throw err;
        }
      case "pin_set": {
        const r = await this.deps.pins.set(this.deps.prisma, { tenantId: ctx.tenant.id, contactId: ctx.contact.id, pin: e.pin });
        return r.ok ? { type: "pin_set", ok: true } : { type: "pin_set", ok: false, reason: r.message };
      }
      case "pin_check": {
        const r = await this.deps.pins.verify(this.deps.prisma, { tenantId: ctx.tenant.id, contactId: ctx.contact.id, pin: e.pin });
        if (r.status === "approved") guard.verified = true;
        return r.status === "wrong" ? { type: "pin_check", status: "wrong", attemptsLeft: r.attemptsLeft } : { type: "pin_check", status: r.status };
      }
      case "action": {
        const run = this.deps.actions?.[e.action];
        if (!run) return { type: "action", ok: false, error: "unknown_action" };
        if (guard.apiStart && !guard.verified && SENSITIVE_ACTIONS.has(e.action)) {
          // a flow started from the API runs a sensitive action only after the customer verified in this chat
          await recordAudit(this.deps.prisma, {
            tenantId: ctx.tenant.id, type: "flow.action_refused", actor: `flow:${def.name}`, subject: ctx.contact.phoneE164 ?? ctx.contact.id,
            data: { flow: def.name, step: e.step, action: e.action, reason: "api_start_unverified", startedBy: guard.startedBy ?? null }, at: ctx.now,
          });
          return { type: "action", ok: false, error: "verification_required" };
        }
        const locale = ctx.contact.locale ?? readSettings(ctx.tenant.settings).flows.defaultLocale;
        const r = await run({ tenant: ctx.tenant, contact: ctx.contact, now: ctx.now, flow: def.name, step: e.step, locale, ...(guard.apiStart && guard.startedBy ? { startedBy: guard.startedBy } : {}) }, e.params);
        return r.ok ? { type: "action", ok: true, data: r.data } : { type: "action", ok: false, error: r.error };
      }
    }
  }
}

/**
 * Kept in the session's state: a session the API started (`POST /v1/flows/{name}/start`) runs no sensitive action
 * (src/journeys/actions.ts SENSITIVE_ACTIONS) until the customer verified in it (a code to their own number, or their PIN).
 */
interface SessionGuard {
  apiStart: boolean;
  verified: boolean;
  /** the API actor that started the session */
  startedBy?: string;
}

function guardOf(state: Record<string, unknown> | null | undefined): SessionGuard {
  return { apiStart: state?.apiStart === true, verified: state?.verifiedInChat === true, ...(typeof state?.startedBy === "string" ? { startedBy: state.startedBy } : {}) };
}

function enqueue(calls: Pick<FlowCalls, "enqueue">, call: FlowCall): () => Promise<void> {
  return () => calls.enqueue(call);
}

function ended(): NonNullable<RouteResult["session"]> {
  return { flow: null, flowVersion: null, step: null, variables: {}, expiresAt: null, state: {}, handoffAt: null };
}

function countryOf(phone: string | null | undefined): string | undefined {
  if (!phone) return undefined;
  try {
    return normalizeNumber(phone).country;
  } catch {
    return undefined;
  }
}

function pickLocale(texts: Record<"en_US" | "es" | "pt_BR", string>, locale: string): string {
  if (locale.startsWith("es")) return texts.es;
  if (locale.startsWith("pt")) return texts.pt_BR;
  return texts.en_US;
}
