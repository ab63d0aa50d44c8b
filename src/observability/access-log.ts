import type { IncomingMessage, ServerResponse } from "node:http";
import type { Request, RequestHandler } from "express";
import type { Logger } from "./logger";

/**
 * One access line per HTTP request at `info`: its request id, method, route (the matched pattern, e.g.
 * `/v1/verifications/:id`, never the raw URL: ids and phone numbers stay out of the log), status and duration.
 *
 * Above `maxPerSecond` lines in one second the rest of that second's requests are aggregated, not dropped: when the
 * second ends, one `requests aggregated` line per (method, route, status) carries their count and p50/max duration.
 * Every request is counted exactly once: in its own line or in a summary.
 */
export interface AccessEntry {
  reqId?: string;
  method: string;
  route: string;
  status: number;
  ms: number;
}

interface Bucket {
  method: string;
  route: string;
  status: number;
  count: number;
  maxMs: number;
  /** a sample of durations for the median (all of them up to SAMPLE, then a reservoir) */
  sample: number[];
}

const SAMPLE = 1_000;
const WINDOW_MS = 1_000;

export class AccessLog {
  private windowStart = 0;
  private linesInWindow = 0;
  private readonly buckets = new Map<string, Bucket>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    /** ACCESS_LOG_MAX_PER_SECOND: individual lines per second before aggregation (0: aggregate everything) */
    private readonly maxPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {}

  record(e: AccessEntry): void {
    if (!this.logger.isLevelEnabled("info")) return;
    const t = this.now();
    if (t - this.windowStart >= WINDOW_MS) {
      this.flush();
      this.windowStart = t;
      this.linesInWindow = 0;
    }
    if (this.linesInWindow < this.maxPerSecond) {
      this.linesInWindow++;
      const line = { method: e.method, route: e.route, status: e.status, ms: e.ms };
      // reqId is bound explicitly: the access line may be written after the request's async context ended
      if (e.reqId) this.logger.info({ reqId: e.reqId, ...line }, "request");
      else this.logger.info(line, "request");
      return;
    }
    const key = `${e.method} ${e.route} ${e.status}`;
    let b = this.buckets.get(key);
    if (!b) {
      b = { method: e.method, route: e.route, status: e.status, count: 0, maxMs: 0, sample: [] };
      this.buckets.set(key, b);
    }
    b.count++;
    if (e.ms > b.maxMs) b.maxMs = e.ms;
    if (b.sample.length < SAMPLE) b.sample.push(e.ms);
    else {
      const i = Math.floor(Math.random() * b.count);
      if (i < SAMPLE) b.sample[i] = e.ms;
    }
    // the summary is written when the second ends, whether or not another request comes
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, Math.max(1, this.windowStart + WINDOW_MS - t)).unref();
  }

  /** Writes the summaries of the window so far (also at shutdown). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buckets.size === 0) return;
    for (const b of this.buckets.values()) {
      const sorted = b.sample.sort((x, y) => x - y);
      const p50Ms = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
      this.logger.info({ method: b.method, route: b.route, status: b.status, count: b.count, p50Ms, maxMs: b.maxMs, windowMs: WINDOW_MS }, "requests aggregated");
    }
    this.buckets.clear();
  }

  /** Express middleware: records every request the app answers, once its answer is finished (or cut). */
  middleware(): RequestHandler {
    // below info (the benchmark runs at warn) the requests pay nothing for it
    if (!this.logger.isLevelEnabled("info")) return (_req, _res, next) => next();
    return (req, res, next) => {
      const started = process.hrtime.bigint();
      let route: string | undefined;
      // the pattern is read when the answer starts: a router's mount path is still on the request then
      const writeHead = res.writeHead;
      res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
        route ??= routePattern(req);
        return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
      } as typeof res.writeHead;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.record({ reqId: res.locals.requestId, method: req.method, route: route ?? routePattern(req), status: res.headersSent ? res.statusCode : 0, ms: elapsedMs(started) });
      };
      res.once("finish", finish);
      res.once("close", finish);
      next();
    };
  }

  /** For a request answered outside Express (the lean webhook): records it when its answer is finished. */
  track(req: IncomingMessage, res: ServerResponse, route: string, reqId: string): void {
    if (!this.logger.isLevelEnabled("info")) return;
    const started = process.hrtime.bigint();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.record({ reqId, method: req.method ?? "?", route, status: res.headersSent ? res.statusCode : 0, ms: elapsedMs(started) });
    };
    res.once("finish", finish);
    res.once("close", finish);
  }
}

function elapsedMs(started: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - started) / 10_000) / 100;
}

/**
 * The matched route's pattern with its routers' mount paths: `req.route.path` is the pattern of the last part of
 * the path, and the mount paths are the path's leading segments (every mount in src/ is a literal path). A request no
 * route matched (404, static files) is `(unmatched)`: the raw URL may carry ids and numbers.
 */
export function routePattern(req: Request): string {
  const pattern = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof pattern !== "string") return "(unmatched)";
  const path = (req.originalUrl ?? req.url ?? "").split("?")[0] ?? "";
  const own = pattern.split("/").filter(Boolean).length;
  const segments = path.split("/").filter(Boolean);
  const mount = req.baseUrl || (own <= segments.length ? segments.slice(0, segments.length - own).map((s) => `/${s}`).join("") : "");
  return `${mount}${pattern === "/" && mount ? "" : pattern}` || "/";
}
