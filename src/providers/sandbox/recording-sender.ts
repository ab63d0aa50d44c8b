import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { maskPhone, type Logger } from "../../observability/logger";
import { systemClock, type Clock } from "../../shared/clock";
import type { CodeMessage, CodeSender, CodeSendResult } from "../ports";
import { smsBody, voiceScript, voiceScriptText } from "../sms/texts";
import { renderTwiml } from "../voice/twiml";

/** What a code channel would have sent: the SMS text, or the call's spoken script (and its TwiML). */
export interface RecordedCode {
  providerRef: string;
  channel: "sms" | "voice";
  to: string;
  /** SMS body, or the spoken words of the call */
  text: string;
  /** voice only: the TwiML Twilio would have been given */
  twiml?: string;
  locale: string;
  reference: string;
  at: Date;
}

export interface FailNextOptions {
  transient: boolean;
  errorCode?: string;
  message?: string;
}

/**
 * A code channel that sends nothing: it records each message in memory and emits `"sent"` (RecordedCode) for the
 * demo page and tests. `failNext(n, {transient})` makes the next n sends fail, so tests can force a fallback.
 * Records hold the code (that is their purpose, in the local demo); the logger only ever sees masked numbers.
 * createCodeSenders never builds one when the config says twilio.
 */
export class RecordingCodeSender extends EventEmitter implements CodeSender {
  readonly provider = "sandbox";
  /**
   * Nothing reports delivery back by default: a sandbox SMS or call counts as sent, and no timeout falls back
   * from it. `reportsDelivery: true` plays a provider with status callbacks (tests of the timeout path).
   */
  get reportsDelivery(): boolean {
    return this.opts.reportsDelivery ?? false;
  }
  private readonly records: RecordedCode[] = [];
  private failures: Array<FailNextOptions> = [];

  constructor(
    readonly channel: "sms" | "voice",
    private readonly opts: { clock?: Clock; logger?: Logger; maxRecords?: number; reportsDelivery?: boolean } = {},
  ) {
    super();
  }

  async send(msg: CodeMessage): Promise<CodeSendResult> {
    const log = { channel: this.channel, provider: this.provider, to: maskPhone(msg.to), reference: msg.reference };
    const failure = this.failures.shift();
    if (failure) {
      this.opts.logger?.info({ ...log, transient: failure.transient, errorCode: failure.errorCode }, "sandbox code send failed on purpose");
      return {
        ok: false,
        transient: failure.transient,
        errorCode: failure.errorCode ?? (failure.transient ? "sandbox_transient" : "sandbox_permanent"),
        message: failure.message ?? `sandbox ${this.channel} failure (failNext)`,
      };
    }
    const providerRef = `${this.channel === "sms" ? "SBSM" : "SBCA"}${randomBytes(15).toString("hex")}`;
    let record: RecordedCode;
    if (this.channel === "sms") {
      record = { providerRef, channel: "sms", to: msg.to, text: smsBody(msg), locale: msg.locale, reference: msg.reference, at: (this.opts.clock ?? systemClock).now() };
    } else {
      const script = voiceScript(msg);
      record = { providerRef, channel: "voice", to: msg.to, text: voiceScriptText(script), twiml: renderTwiml(script), locale: msg.locale, reference: msg.reference, at: (this.opts.clock ?? systemClock).now() };
    }
    this.records.push(record);
    const max = this.opts.maxRecords ?? 1000;
    if (this.records.length > max) this.records.splice(0, this.records.length - max);
    this.opts.logger?.info({ ...log, providerRef }, "sandbox code recorded");
    this.emit("sent", record);
    return { ok: true, providerRef };
  }

  /** The next `n` sends fail with the given class (counts add up across calls). */
  failNext(n: number, opts: FailNextOptions): void {
    for (let i = 0; i < n; i++) this.failures.push({ ...opts });
  }

  /** Everything recorded so far (oldest first), optionally for one number. */
  sent(to?: string): RecordedCode[] {
    return to === undefined ? [...this.records] : this.records.filter((r) => r.to === to);
  }

  last(to?: string): RecordedCode | undefined {
    const list = this.sent(to);
    return list[list.length - 1];
  }

  /** Forgets the records and pending failures. */
  clear(): void {
    this.records.length = 0;
    this.failures = [];
  }
}
