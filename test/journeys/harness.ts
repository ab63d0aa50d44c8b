import { ACTIONS } from "../../src/flows/schema";
import type { ActionExecutor } from "../../src/flows/flow.handler";
import type { ActionRegistry } from "../../src/journeys/actions";
import { createContactActions } from "../../src/journeys/contacts.actions";
import { createPinActions } from "../../src/journeys/pin.actions";
import { DEFAULT_TEMPLATES } from "../../src/sandbox/templates";
import { RecordingEmailSender } from "../../src/providers/email/recording-sender";
import type { Clock } from "../../src/shared/clock";
import type { SandboxMessage } from "../../src/sandbox/types";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * The bot with the journeys' actions (src/journeys), its built-in flows (flows/) and the sandbox. The action
 * modules need the core's services, which exist only once the system runs: the registry given to the core
 * forwards to them.
 */
export async function startJourneys(opts: { clock?: Clock; env?: Record<string, string> } = {}): Promise<{ sys: TestSystem; email: RecordingEmailSender }> {
  const late: Record<string, ActionExecutor> = {};
  const forward: ActionRegistry = Object.fromEntries(
    ACTIONS.map((a) => [a, (async (ctx, params) => (late[a] ? late[a]!(ctx, params) : { ok: false, error: "unknown_action" })) as ActionExecutor]),
  );
  const sys = await startTestSystem({
    clock: opts.clock,
    actions: [forward],
    env: { OUTBOUND_RECIPIENT_GAP_MS: "5", PUBLIC_BASE_URL: "https://bot.example.com", ...opts.env },
    // the utility templates docs/journeys.md asks a business to create, as Meta would hold them
    sandbox: {
      templates: [
        ...DEFAULT_TEMPLATES,
        { name: "login_notice", language: "en_US", category: "UTILITY", body: "New login to your account from {{1}} in {{2}}. If this wasn't you, reply to this message.", buttons: [{ type: "quick_reply", text: "It was me" }, { type: "quick_reply", text: "This wasn't me" }] },
        { name: "reverify_request", language: "en_US", category: "UTILITY", body: "For your security, please confirm that this number is still yours.", buttons: [{ type: "quick_reply", text: "Verify now" }, { type: "quick_reply", text: "Later" }] },
      ],
    },
  });
  const email = new RecordingEmailSender();
  const { prisma, eventPublisher, logger, verifications, pins, keyring, clock } = sys.core;
  for (const group of [
    createContactActions({ prisma, eventPublisher, logger, verifications }),
    createPinActions({ prisma, pins, keyring, clock, logger, email, config: sys.config }),
  ]) {
    for (const [k, v] of Object.entries(group)) if (v) late[k] = v;
  }
  return { sys, email };
}

/** One customer's chat: what the bot sent (read in order with `expectBot`), and what the customer does. */
export class Chat {
  private cursor = 0;
  constructor(
    private readonly sys: TestSystem,
    readonly digits: string,
  ) {}

  outbound(): SandboxMessage[] {
    return this.sys.sandbox.conversation(this.digits).filter((m) => m.direction === "outbound");
  }

  async say(text: string): Promise<void> {
    await this.sys.sandbox.injectInbound({ from: this.digits, text });
  }

  /** Taps a reply button or list row the bot sent (the latest message that has it), by id. */
  async tap(id: string): Promise<void> {
    const msgs = this.outbound();
    for (let i = msgs.length - 1; i >= 0; i--) {
      const m = msgs[i]!;
      const button = m.buttons?.find((b) => b.replyId === id);
      if (button) {
        await this.sys.sandbox.injectInbound({ from: this.digits, message: { type: "interactive", interactive: { type: "button_reply", button_reply: { id, title: button.title } } } });
        return;
      }
      const rows = ((m.payload as { action?: { sections?: { rows: { id: string; title: string }[] }[] } }).action?.sections ?? []).flatMap((s) => s.rows);
      const row = rows.find((r) => r.id === id);
      if (row) {
        await this.sys.sandbox.injectInbound({ from: this.digits, message: { type: "interactive", interactive: { type: "list_reply", list_reply: { id, title: row.title } } } });
        return;
      }
    }
    throw new Error(`no button or row '${id}' in the chat with ${this.digits}: ${JSON.stringify(msgs.map((m) => m.text))}`);
  }

  /** Waits for the next bot message (from where the last expectation stopped) that matches; returns it. */
  async expectBot(match: RegExp | string, timeoutMs = 10_000): Promise<SandboxMessage> {
    const test = (m: SandboxMessage) => (typeof match === "string" ? m.text === match : match.test(m.text));
    const found = await waitFor(
      () => {
        const msgs = this.outbound();
        const i = msgs.findIndex((m, k) => k >= this.cursor && test(m));
        return i >= 0 ? { i, m: msgs[i]! } : null;
      },
      timeoutMs,
    ).catch(() => {
      throw new Error(`the bot never said ${String(match)} to ${this.digits}; it said: ${JSON.stringify(this.outbound().slice(this.cursor).map((m) => m.text))}`);
    });
    this.cursor = found.i + 1;
    return found.m;
  }

  /** The reply ids of a message's buttons or list rows. */
  static ids(m: SandboxMessage): string[] {
    const rows = ((m.payload as { action?: { sections?: { rows: { id: string }[] }[] } }).action?.sections ?? []).flatMap((s) => s.rows.map((r) => r.id));
    return [...(m.buttons?.map((b) => b.replyId ?? "") ?? []), ...rows];
  }

  /** Nothing more from the bot for a while (after what was already expected). */
  async quiet(ms = 400): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const extra = this.outbound().slice(this.cursor);
    if (extra.length) throw new Error(`unexpected bot messages: ${JSON.stringify(extra.map((m) => m.text))}`);
  }

  /** Skips what was sent so far (e.g. the code's own messages). */
  skipAll(): void {
    this.cursor = this.outbound().length;
  }

  /** Waits for a new code to this chat's number (different from `before`) and returns it. */
  async code(before: string | null = null): Promise<string> {
    return waitFor(() => {
      const c = latestCode(this.sys.sandbox, this.digits);
      return c && c !== before ? c : null;
    });
  }
}

/** A wrong code for a right one. */
export const wrongCode = (code: string) => (code === "000000" ? "111111" : "000000");

/** The three languages the journeys are written in, and a country whose numbers get each one (the contact's language comes from its number). */
export const LANGUAGES = [
  { locale: "en_US", lang: "English (US)", prefix: "1415555", width: 4 },
  { locale: "es", lang: "Spanish", prefix: "346123", width: 5 },
  { locale: "pt_BR", lang: "Brazilian Portuguese", prefix: "55119123", width: 5 },
] as const;
export type Language = (typeof LANGUAGES)[number];
export type Locale = Language["locale"];
export type PerLocale<T> = Record<Locale, T>;

/**
 * A number of the language's country, one per `n` (0–999): +1 415 555 7nnn, +34 612 347 nnn, +55 11 91234 7nnn. Other
 * tests use …03xx, …04xx and …45xxx, so these never meet theirs.
 */
export function numberFor(l: Language, n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 999) throw new Error(`numberFor: ${n} is not 0-999`);
  return `${l.prefix}${String(7000 + n).padStart(l.width, "4")}`;
}

/** A number for a regular expression. */
export const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
