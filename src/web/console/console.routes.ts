import path from "node:path";
import type { Queue } from "bullmq";
import express, { Router, type NextFunction, type Request, type RequestHandler, type Response } from "express";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { PrismaClient } from "../../db/prisma";
import { askedTenant, hasScope, type KeyAuthenticator } from "../../http/auth";
import { ApiError, sendError } from "../../http/errors";
import { parseInput } from "../../http/validate";
import type { Logger } from "../../observability/logger";
import { OtpError } from "../../otp/errors";
import type { Keyring } from "../../shared/crypto";
import type { Principal } from "../../tenants/api-keys";
import { noStore, pageSecurity } from "../security";
import { csrfToken, originCheck } from "./csrf";
import { validateFlowSource } from "./flow-lines";
import { signInPage } from "./pages";
import { consoleStats, listConversations, listVerifications, queueDepths, VERIFICATION_STATUSES } from "./queries";
import { queuesBoard } from "./queues-board";
import { adminKeyFingerprint, ConsoleSessions, type ConsoleSession } from "./sessions";

const ASSETS = path.join(__dirname, "assets");
const UPLOT = path.dirname(require.resolve("uplot/dist/uPlot.iife.min.js"));
const COOKIE = "wabot_console";
const BASE = "/console";

declare module "express-serve-static-core" {
  interface Request {
    consoleSession?: { id: string; session: ConsoleSession };
  }
}

export interface ConsoleDeps {
  prisma: PrismaClient;
  redis: Redis;
  queues: Record<string, Queue>;
  /** Redis key prefix (the deployment's QUEUE_PREFIX): sessions live under `<prefix>:console:session:` */
  keyPrefix: string;
  logger: Logger;
  /** the same key check as the Bearer APIs (ADMIN_API_KEY or a tenant key; failures throttled per IP) */
  keyAuth: KeyAuthenticator;
  /** the admin API router (flows, conversations, tenants, keys, audit): the console reaches it with its session */
  adminApi: RequestHandler;
  /** the deployment's ADMIN_API_KEY and the keyring: a session opened with that key is bound to a keyed hash of it */
  adminApiKey: string;
  keyring: Keyring;
  /** production: the session cookie is always `Secure` (whatever the proxy set-up says about the request) */
  production: boolean;
  sessionIdleSeconds?: number;
}

function cookieValue(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

function canUseConsole(p: Principal): boolean {
  return hasScope(p, "read");
}

/**
 * The business console (`/console`): a sign-in form takes an admin key (the deployment's ADMIN_API_KEY, or a tenant
 * key with the admin or read scope) and opens a session (HttpOnly, SameSite=Strict cookie; Redis, idle expiry).
 * Its pages call JSON endpoints under /console/api: the admin API itself (/console/api/admin/…, same routes, same
 * tenant isolation) and a few read models of its own. Every state-changing request needs the session's CSRF token
 * (X-CSRF-Token) and a same-site Origin. The queue dashboard (bull-board) is at /console/queues, for the
 * deployment's admin only (the queues hold every tenant's jobs).
 */
export function consoleRoutes(deps: ConsoleDeps): Router {
  const sessions = new ConsoleSessions(deps.redis, deps.prisma, deps.keyPrefix, adminKeyFingerprint(deps.keyring, deps.adminApiKey), { idleSeconds: deps.sessionIdleSeconds });
  const router = Router();
  const strict = pageSecurity();

  // Secure in production whether or not the proxy in front is trusted to say the request came over https
  const secure = (req: Request) => deps.production || req.secure;
  const setCookie = (req: Request, res: Response, value: string, maxAgeSeconds: number) => {
    res.cookie(COOKIE, value, { httpOnly: true, sameSite: "strict", secure: secure(req), path: BASE, maxAge: maxAgeSeconds * 1000 });
  };

  /** Loads the session named by the cookie (null when none or expired). */
  const loadSession = async (req: Request): Promise<ConsoleSession | null> => {
    const id = cookieValue(req, COOKIE);
    const session = await sessions.get(id);
    if (session && id) req.consoleSession = { id, session };
    return session;
  };

  /** JSON routes: a session is required (401 otherwise), its principal acts; state changes need the CSRF token. */
  const apiSession: RequestHandler = async (req, res, next) => {
    try {
      const session = await loadSession(req);
      if (!session) return sendError(res, 401, "not_signed_in", "Sign in to the console first");
      req.principal = { ...session.principal, scopes: [...session.principal.scopes] };
      next();
    } catch (err) {
      next(err);
    }
  };
  const requireCsrf = csrfToken((req) => req.consoleSession?.session.csrf);

  // ---- pages ------------------------------------------------------------------------------------------------------
  router.get([BASE, `${BASE}/`], strict, noStore, async (req, res) => {
    const session = await loadSession(req);
    if (!session) return res.type("html").send(signInPage({}));
    res.sendFile(path.join(ASSETS, "console.html"));
  });

  router.post(`${BASE}/login`, strict, noStore, originCheck, express.urlencoded({ extended: false, limit: "8kb" }), async (req, res) => {
    const key = typeof req.body?.key === "string" ? req.body.key.trim() : "";
    if (!key) return res.status(400).type("html").send(signInPage({ error: "Enter an admin key." }));
    let principal: Principal;
    try {
      principal = await deps.keyAuth(key, req.ip ?? "unknown");
    } catch (err) {
      if (err instanceof OtpError && err.code === "rate_limited") {
        if (err.retryAfterSeconds) res.setHeader("Retry-After", String(err.retryAfterSeconds));
        return res.status(429).type("html").send(signInPage({ error: `Too many wrong keys from this address. Try again in ${err.retryAfterSeconds ?? 60} seconds.` }));
      }
      if (err instanceof ApiError && err.status === 401) return res.status(401).type("html").send(signInPage({ error: "That key is not valid." }));
      throw err;
    }
    if (!canUseConsole(principal)) {
      return res.status(403).type("html").send(signInPage({ error: "This key cannot open the console: it needs the admin or read scope." }));
    }
    // a fresh id at each sign-in (no fixation); an old session of this browser ends
    await sessions.destroy(cookieValue(req, COOKIE));
    const { id } = await sessions.create(principal);
    setCookie(req, res, id, sessions.idleSeconds * 24);
    deps.logger.info({ actor: principal.actor, tenantId: principal.tenantId }, "console: signed in");
    res.redirect(303, BASE);
  });

  router.post(`${BASE}/logout`, strict, noStore, originCheck, apiSession, requireCsrf, async (req, res) => {
    await sessions.destroy(req.consoleSession?.id);
    res.clearCookie(COOKIE, { path: BASE, httpOnly: true, sameSite: "strict", secure: secure(req) });
    res.json({ signedOut: true });
  });

  router.use(`${BASE}/assets`, strict, express.static(ASSETS, { index: false, fallthrough: false }));
  router.use(`${BASE}/vendor/uplot`, strict, express.static(UPLOT, { index: false, fallthrough: false }));

  // ---- the queue dashboard ------------------------------------------------------------------------------------------
  const board = queuesBoard(deps.queues, `${BASE}/queues`);
  router.use(`${BASE}/queues`, pageSecurity({ inlineStyles: true }), noStore, originCheck, async (req: Request, res: Response, next: NextFunction) => {
    try {
      const session = await loadSession(req);
      const wantsJson = req.path.startsWith("/api/");
      if (!session) return wantsJson ? sendError(res, 401, "not_signed_in", "Sign in to the console first") : res.redirect(303, BASE);
      if (!session.principal.superAdmin) {
        return sendError(res, 403, "forbidden", "The queue dashboard shows every tenant's jobs: only the deployment's ADMIN_API_KEY may open it");
      }
      next();
    } catch (err) {
      next(err);
    }
  }, board);

  // ---- JSON for the pages -------------------------------------------------------------------------------------------
  const api = Router();
  api.use(noStore, originCheck, apiSession, requireCsrf);

  /** The tenant a request reads: the key's own; the deployment's admin may name another with ?tenantId=. */
  // the page's tenant picker sends an empty value for the key's own tenant
  const tenantOf = (req: Request) => askedTenant(deps.prisma, req.principal!, req.query.tenantId === "" ? undefined : req.query.tenantId);

  api.get("/session", async (req, res) => {
    const p = req.principal!;
    const tenants = await deps.prisma.tenant.findMany({
      where: p.superAdmin ? {} : { id: p.tenantId },
      select: { id: true, name: true, displayPhoneNumber: true },
      orderBy: { createdAt: "asc" },
    });
    res.json({
      actor: p.actor,
      tenantId: p.tenantId,
      scopes: p.scopes,
      superAdmin: p.superAdmin,
      canWrite: hasScope(p, "admin"),
      csrfToken: req.consoleSession!.session.csrf,
      idleSeconds: sessions.idleSeconds,
      tenants,
    });
  });

  api.get("/verifications", async (req, res) => {
    const tenantId = await tenantOf(req);
    const q = parseInput(z.object({ status: z.enum(VERIFICATION_STATUSES).optional(), limit: z.coerce.number().int().min(1).max(500).default(50), tenantId: z.string().optional() }), req.query);
    res.json({ verifications: await listVerifications(deps.prisma, tenantId, { status: q.status, limit: q.limit }) });
  });

  api.get("/conversations", async (req, res) => {
    const tenantId = await tenantOf(req);
    const q = parseInput(z.object({ limit: z.coerce.number().int().min(1).max(200).default(30), tenantId: z.string().optional() }), req.query);
    res.json({ conversations: await listConversations(deps.prisma, tenantId, { limit: q.limit, messages: 20 }) });
  });

  api.get("/stats", async (req, res) => {
    const tenantId = await tenantOf(req);
    res.json(await consoleStats(deps.prisma, tenantId));
  });

  // deployment-wide (every tenant's jobs, in one set of queues): the deployment's admin only, like bull-board
  api.get("/queues", async (req, res) => {
    if (!req.principal!.superAdmin) return sendError(res, 403, "forbidden", "Queue depths are deployment-wide: only the deployment's ADMIN_API_KEY may read them");
    res.json(await queueDepths(deps.queues));
  });

  api.post("/flows/validate", express.json({ limit: "1mb" }), (req, res) => {
    const body = parseInput(z.strictObject({ text: z.string().max(1_000_000), format: z.enum(["json", "yaml"]), name: z.string().max(64).optional() }), req.body);
    res.json(validateFlowSource(body.text, body.format, body.name));
  });

  // the admin API, unchanged, with the session's principal: flows, tenants and settings, keys, audit, handoffs
  api.use("/admin", deps.adminApi);
  api.use((req, res) => sendError(res, 404, "not_found", `No console route for ${req.method} ${req.path}`));

  router.use(`${BASE}/api`, api);
  return router;
}
