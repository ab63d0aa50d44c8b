import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A tiny recording stand-in for the Cloud API's send endpoint, scripted per request: what tests need to pin the
 * exact JSON we send and to produce every kind of failure (HTTP errors with Meta's envelope, Retry-After, a
 * request that never gets an answer, a connection cut after the request arrived, an answer held back).
 */
export interface Recorded {
  at: number;
  method: string;
  path: string;
  authorization?: string;
  contentType?: string;
  raw: string;
  body: Record<string, unknown>;
  /** the recipient (`to` or `recipient`) */
  to: string;
}

export type Reply =
  | { kind: "ok"; wamid?: string; waId?: string; release?: Promise<void> }
  | { kind: "error"; httpStatus: number; code?: number; title?: string; details?: string; headers?: Record<string, string>; rawBody?: string }
  | { kind: "hang" }
  | { kind: "destroy" };

export function metaError(httpStatus: number, code: number, extra: { title?: string; details?: string; headers?: Record<string, string> } = {}): Reply {
  return { kind: "error", httpStatus, code, ...extra };
}

export class FakeGraph {
  readonly requests: Recorded[] = [];
  private readonly server: http.Server;
  private script: Array<{ reply: Reply; to?: string }> = [];
  private n = 0;
  url = "";

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => void this.handle(req, res, Buffer.concat(chunks).toString("utf8")));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  /** Scripts the next matching requests (optionally only those to one recipient); unscripted requests succeed. */
  next(reply: Reply, opts: { to?: string; times?: number } = {}): this {
    for (let i = 0; i < (opts.times ?? 1); i++) this.script.push({ reply, to: opts.to });
    return this;
  }

  reset(): void {
    this.script = [];
    this.requests.length = 0;
  }

  to(recipient: string): Recorded[] {
    return this.requests.filter((r) => r.to === recipient);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, raw: string): Promise<void> {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      /* recorded as is */
    }
    const to = String(body.to ?? body.recipient ?? "");
    this.requests.push({
      at: Date.now(),
      method: req.method ?? "",
      path: req.url ?? "",
      authorization: req.headers.authorization,
      contentType: req.headers["content-type"],
      raw,
      body,
      to,
    });
    const i = this.script.findIndex((s) => !s.to || s.to === to);
    const reply: Reply = i >= 0 ? this.script.splice(i, 1)[0]!.reply : { kind: "ok" };
    switch (reply.kind) {
      case "hang":
        return; // never answers; the connection is cut by close()
      case "destroy":
        req.socket.destroy();
        return;
      case "error": {
        const payload =
          reply.rawBody ??
          JSON.stringify({
            error: {
              message: reply.title ?? `(#${reply.code}) error`,
              type: "OAuthException",
              code: reply.code,
              error_data: { messaging_product: "whatsapp", details: reply.details ?? "details" },
              fbtrace_id: "Axyz",
            },
          });
        res.writeHead(reply.httpStatus, { "content-type": "application/json", ...(reply.headers ?? {}) });
        res.end(payload);
        return;
      }
      case "ok": {
        if (reply.release) await reply.release;
        const digits = to.replace(/\D/g, "");
        const wamid = reply.wamid ?? `wamid.fake${++this.n}`;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            messaging_product: "whatsapp",
            contacts: [{ input: to, wa_id: reply.waId ?? digits }],
            messages: [{ id: wamid }],
          }),
        );
        return;
      }
    }
  }
}
