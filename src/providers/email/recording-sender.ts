import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import type { Logger } from "../../observability/logger";
import { systemClock, type Clock } from "../../shared/clock";
import { maskEmail, type EmailMessage, type EmailSender, type EmailSendResult } from "./ports";

/** What the sandbox "sent": the whole message, as the recipient would have received it. */
export interface RecordedEmail extends EmailMessage {
  id: string;
  from: string;
  at: Date;
}

/**
 * An email channel that sends nothing: it records each message in memory and emits `"sent"` (RecordedEmail) for
 * the demo and tests. `failNext(n)` makes the next n sends fail. Records hold the full message (that is their
 * purpose, in the local demo); the logger only ever sees masked addresses. createEmailSender never builds one
 * when the config says smtp.
 */
export class RecordingEmailSender extends EventEmitter implements EmailSender {
  readonly provider = "sandbox";
  private readonly records: RecordedEmail[] = [];
  private failures: string[] = [];

  constructor(private readonly opts: { from?: string; clock?: Clock; logger?: Logger; maxRecords?: number } = {}) {
    super();
  }

  async send(msg: EmailMessage): Promise<EmailSendResult> {
    const failure = this.failures.shift();
    if (failure) {
      this.opts.logger?.info({ provider: this.provider, to: maskEmail(msg.to), error: failure }, "sandbox email failed on purpose");
      return { ok: false, error: failure };
    }
    const id = `sandbox-${randomBytes(12).toString("hex")}`;
    const record: RecordedEmail = { ...msg, id, from: this.opts.from ?? "no-reply@localhost", at: (this.opts.clock ?? systemClock).now() };
    this.records.push(record);
    const max = this.opts.maxRecords ?? 1000;
    if (this.records.length > max) this.records.splice(0, this.records.length - max);
    this.opts.logger?.info({ provider: this.provider, to: maskEmail(msg.to), id }, "sandbox email recorded");
    this.emit("sent", record);
    return { ok: true, id };
  }

  /** The next `n` sends fail with `error` (default `sandbox_failure`). */
  failNext(n: number, error = "sandbox_failure"): void {
    for (let i = 0; i < n; i++) this.failures.push(error);
  }

  /** Everything recorded so far (oldest first), optionally for one address (compared case-insensitively). */
  sent(to?: string): RecordedEmail[] {
    return to === undefined ? [...this.records] : this.records.filter((r) => r.to.toLowerCase() === to.toLowerCase());
  }

  last(to?: string): RecordedEmail | undefined {
    const list = this.sent(to);
    return list[list.length - 1];
  }

  /** Forgets the records and pending failures. */
  clear(): void {
    this.records.length = 0;
    this.failures = [];
  }
}
