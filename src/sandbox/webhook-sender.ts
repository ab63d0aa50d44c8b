import { request as httpRequest, type Agent } from "node:http";
import { request as httpsRequest } from "node:https";
import { signBody } from "../ingest/verify-signature";
import type { Logger } from "../observability/logger";
import type { RecordedWebhook } from "./types";

export interface WebhookSenderOptions {
  appSecret: string;
  url: () => string | undefined;
  retry: { attempts: number; baseDelayMs: number };
  logger: Logger;
  record: (w: RecordedWebhook) => void;
  /** per attempt; Meta documents none, the bot should answer well within it */
  attemptTimeoutMs?: number;
  /** keep-alive agent (Meta delivers over long-lived connections; the benchmark uses one); default: a connection per delivery */
  agent?: Agent;
}

/**
 * Posts signed webhooks to the bot like Meta: `X-Hub-Signature-256: sha256=<hmac of the exact bytes>`, and any answer
 * other than 200 (or no answer) is redelivered with exponential backoff (WA/webhooks/overview: "If a webhook request
 * to your endpoint receives an HTTP status code other than 200 … delivery is retried with decreasing frequency").
 * Meta keeps trying for 7 days; the sandbox stops after `retry.attempts` deliveries.
 */
export class WebhookSender {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<AbortController>();
  private closed = false;

  constructor(private readonly opts: WebhookSenderOptions) {}

  /** Delivers `body` (already serialised); resolves with the bot's status of the first attempt (0: no answer). */
  async deliver(body: string, kind: RecordedWebhook["kind"]): Promise<number> {
    return this.attempt(body, kind, 1);
  }

  private async attempt(body: string, kind: RecordedWebhook["kind"], attempt: number): Promise<number> {
    if (this.closed) return 0;
    const signature = signBody(body, this.opts.appSecret);
    const status = await this.post(body, signature);
    this.opts.record({ body, signature, attempt, responseStatus: status, at: Date.now(), kind });
    if (status !== 200 && attempt < this.opts.retry.attempts && !this.closed) {
      const delay = this.opts.retry.baseDelayMs * 2 ** (attempt - 1);
      this.opts.logger.debug({ kind, attempt, status, delay }, "sandbox: webhook not acknowledged with 200, will redeliver");
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.attempt(body, kind, attempt + 1);
      }, delay);
      this.timers.add(timer);
    }
    return status;
  }

  private post(body: string, signature: string): Promise<number> {
    const url = this.opts.url();
    if (!url) {
      this.opts.logger.warn("sandbox: no webhook URL set, webhook not delivered");
      return Promise.resolve(0);
    }
    const controller = new AbortController();
    this.inFlight.add(controller);
    const target = new URL(url);
    const request = target.protocol === "https:" ? httpsRequest : httpRequest;
    const bytes = Buffer.from(body);
    return new Promise<number>((resolve) => {
      const req = request(
        target,
        {
          method: "POST",
          agent: this.opts.agent ?? false, // default: one connection per delivery, nothing stays open after close()
          signal: controller.signal,
          timeout: this.opts.attemptTimeoutMs ?? 10_000,
          headers: {
            "content-type": "application/json",
            "content-length": bytes.length,
            "x-hub-signature-256": signature,
            "user-agent": "facebookexternalua",
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (err) => {
        if (!this.closed) this.opts.logger.warn({ err: err.message }, "sandbox: webhook delivery failed");
        resolve(0);
      });
      req.end(bytes);
    }).finally(() => this.inFlight.delete(controller));
  }

  /** Cancels pending redeliveries and aborts requests in flight. */
  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.inFlight) c.abort();
    this.inFlight.clear();
  }
}
