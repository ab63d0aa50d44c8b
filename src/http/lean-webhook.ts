import { randomUUID } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Express } from "express";
import type { Ingest } from "../ingest/ingest";
import type { AccessLog } from "../observability/access-log";
import type { Logger } from "../observability/logger";
import type { Metrics, WebhookOutcome } from "../observability/metrics"; // ops
import { runWithRequestId } from "../observability/request-context";
import { acceptRequestId, REQUEST_ID_HEADER } from "../observability/request-id";
import { webhookAnswer } from "./webhook.routes";

/**
 * The webhook's hot path, served ahead of the Express app on the same HTTP server: `POST /webhook` is the one
 * request Meta sends thousands of times a second, and Express's routing and middleware chain cost more CPU than
 * the ingest itself (docs/benchmarks.md). Everything else, and any webhook request this handler does not take
 * (another path spelling, a compressed body), goes to the Express app, whose `/webhook` route stays the reference.
 *
 * It answers exactly as the Express route does (test/ingest/lean-webhook.test.ts): the same ingest function, the
 * same outcome → status mapping (webhookAnswer), the same JSON bodies and headers (X-Request-Id, ETag, Retry-After),
 * 413 for a body over the limit, the same metric, and the request id as the current request id while it runs.
 */
export interface LeanWebhookDeps {
  ingest: Ingest;
  bodyLimitBytes: number;
  logger: Logger;
  metrics?: Pick<Metrics, "webhookRequests">;
  /** the access line of each webhook request (route `/webhook`), as the Express app writes for the others */
  accessLog?: AccessLog;
}

type Etag = (body: Buffer, encoding?: BufferEncoding) => string | undefined;
type Trust = (addr: string, i: number) => boolean;

/** A request listener: the lean webhook for `POST /webhook`, the Express app for everything else. */
export function withLeanWebhook(app: Express, deps: LeanWebhookDeps): RequestListener {
  const handle = leanWebhook(app, deps);
  return (req, res) => {
    if (!handle(req, res)) app(req, res);
  };
}

/** Returns a handler that takes `POST /webhook` (answering it, returns true) and leaves anything else (returns false). */
export function leanWebhook(app: Express, deps: LeanWebhookDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const limit = deps.bodyLimitBytes;
  const count = (outcome: WebhookOutcome) => deps.metrics?.webhookRequests.inc({ outcome });

  return (req, res) => {
    if (req.method !== "POST") return false;
    const url = req.url ?? "";
    const q = url.indexOf("?");
    if ((q === -1 ? url : url.slice(0, q)) !== "/webhook") return false;
    // body-parser inflates gzip/deflate/br bodies: Express keeps those (Meta sends none)
    const encoding = req.headers["content-encoding"];
    if (encoding !== undefined && encoding.toLowerCase() !== "identity") return false;

    const requestId = acceptRequestId(req.headers["x-request-id"]) ?? randomUUID();
    res.setHeader(REQUEST_ID_HEADER, requestId);
    deps.accessLog?.track(req, res, "/webhook", requestId);
    const declared = req.headers["content-length"] === undefined ? NaN : Number(req.headers["content-length"]);
    let tooLarge = declared > limit;
    const chunks: Buffer[] = [];
    let received = 0;
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return; // read off and dropped, as body-parser does before answering 413
      received += chunk.length;
      if (received > limit) {
        tooLarge = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    });
    req.on("error", () => res.destroy());
    req.on("end", () => {
      if (tooLarge) {
        count("too_large"); // ops
        send(res, 413, { error: { code: "payload_too_large", message: "The request body is larger than this endpoint accepts" } }, {});
        return;
      }
      const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
      runWithRequestId(requestId, () => {
        deps
          .ingest(raw, req.headers["x-hub-signature-256"], { requestId })
          .then((outcome) => {
            const answer = webhookAnswer(outcome, deps.logger, () => clientIp(req, app.get("trust proxy fn") as Trust));
            count(answer.metric); // ops
            send(res, answer.status, answer.body, answer.headers);
          })
          .catch((err: unknown) => {
            deps.logger.error({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err), path: "/webhook" }, "unhandled error");
            send(res, 500, { error: { code: "internal_error", message: "Something went wrong on our side" } }, {});
          });
      });
    });
    return true;
  };

  /** res.status(status).json(body) as Express sends it: JSON, charset, Content-Length and Express's ETag. */
  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
    if (res.headersSent || res.destroyed) return;
    const buf = Buffer.from(JSON.stringify(body), "utf8");
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.statusCode = status;
    res.setHeader("Content-Type", "application/json; charset=utf-8");
    res.setHeader("Content-Length", buf.length);
    const etag = (app.get("etag fn") as Etag | undefined)?.(buf);
    if (etag) res.setHeader("ETag", etag);
    res.end(buf);
  }
}

/** Express's `req.ip` (proxy-addr): the socket address, or the nearest X-Forwarded-For hop not trusted. */
function clientIp(req: IncomingMessage, trust: Trust | undefined): string | undefined {
  const addrs = [req.socket.remoteAddress ?? ""];
  const xff = req.headers["x-forwarded-for"];
  if (typeof xff === "string") {
    const hops = xff.split(",").map((h) => h.trim()).filter(Boolean).reverse();
    addrs.push(...hops);
  }
  if (!trust) return addrs[0];
  for (let i = 0; i < addrs.length - 1; i++) if (!trust(addrs[i]!, i)) return addrs[i];
  return addrs[addrs.length - 1];
}
