import express, { type NextFunction, type Request, type Response } from "express";
import type { CloudApi, GraphResult } from "./cloud-api";
import { fbtraceId, maskToken } from "./ids";
import { metaError } from "./meta-errors";
import type { SandboxStore } from "./store";
import type { SandboxMessagingLimits } from "./messaging-limits";

/** Responses held back by the `timeout` fault; close() drops their sockets. */
export class HeldResponses {
  private readonly held = new Set<{ timer: NodeJS.Timeout; res: Response }>();

  hold(res: Response, ms: number, send: () => void): void {
    const entry = {
      res,
      timer: setTimeout(() => {
        this.held.delete(entry);
        if (!res.writableEnded && !res.destroyed) send();
      }, ms),
    };
    this.held.add(entry);
    res.on("close", () => {
      clearTimeout(entry.timer);
      this.held.delete(entry);
    });
  }

  close(): void {
    for (const { timer, res } of this.held) {
      clearTimeout(timer);
      res.socket?.destroy();
    }
    this.held.clear();
  }
}

function errorMessageOf(body: unknown): string {
  const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
  return typeof message === "string" ? message : "error";
}

function send(res: Response, result: GraphResult): void {
  for (const [k, v] of Object.entries(result.headers ?? {})) res.setHeader(k, v);
  res.status(result.status).json(result.body);
}

/** Graph routes: `POST /{version}/{phone-number-id}/messages`, with Meta's JSON for every failure. */
export function graphRouter(api: CloudApi, store: SandboxStore, held: HeldResponses, limits?: SandboxMessagingLimits): express.Router {
  const router = express.Router();
  router.post("/:version/:phoneNumberId/messages", express.json({ limit: "1mb" }), (req: Request, res: Response) => {
    const { version, phoneNumberId } = req.params as { version: string; phoneNumberId: string };
    const result: GraphResult = /^v\d+\.\d+$/.test(version)
      ? api.handle(phoneNumberId, req.headers.authorization, req.body)
      : {
          status: 400,
          body: { error: { message: `Unknown path components: /${version}/${phoneNumberId}/messages`, type: "OAuthException", code: 2500, fbtrace_id: fbtraceId() } },
          errorCode: 2500,
        };
    store.addRequest({
      method: req.method,
      path: req.path,
      body: req.body,
      at: Date.now(),
      authorization: maskToken(req.headers.authorization),
      responseStatus: result.status,
      ...(result.errorCode !== undefined ? { errorCode: result.errorCode } : {}),
      ...(result.status >= 400 ? { errorMessage: errorMessageOf(result.body) } : {}),
      ...(result.wamid ? { wamid: result.wamid } : {}),
      ...(typeof req.headers["x-request-id"] === "string" ? { requestId: req.headers["x-request-id"].slice(0, 200) } : {}),
    });
    if (result.holdMs !== undefined) held.hold(res, result.holdMs, () => send(res, result));
    else send(res, result);
  });
  // a phone number node's fields, e.g. ?fields=whatsapp_business_manager_messaging_limit (./messaging-limits.ts)
  if (limits) {
    router.get("/:version/:phoneNumberId", (req: Request, res: Response) => {
      const { version, phoneNumberId } = req.params as { version: string; phoneNumberId: string };
      const result = limits.read(version, phoneNumberId, req.headers.authorization, req.query.fields);
      store.addRequest({
        method: req.method,
        path: req.originalUrl,
        body: {},
        at: Date.now(),
        authorization: maskToken(req.headers.authorization),
        responseStatus: result.status,
        ...(result.errorCode !== undefined ? { errorCode: result.errorCode } : {}),
      });
      send(res, result);
    });
  }
  // a body Graph cannot parse: Meta's JSON, never an HTML error page
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const e = metaError(100, err instanceof SyntaxError ? "Invalid JSON in request body" : "Invalid request");
    store.addRequest({ method: req.method, path: req.path, body: null, at: Date.now(), authorization: maskToken(req.headers.authorization), responseStatus: e.httpStatus, errorCode: 100, errorMessage: errorMessageOf(e.body) });
    res.status(e.httpStatus).json(e.body);
  });
  return router;
}
