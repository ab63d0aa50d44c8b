import type { NextFunction, Request, RequestHandler, Response } from "express";
import { z } from "zod";
import type { PrismaClient } from "../db/prisma";
import { OtpError } from "../otp/errors";
import type { Limits } from "../otp/limits";
import { safeEqual } from "../shared/crypto";
import type { ApiKeys, Principal, Scope } from "../tenants/api-keys";
import { ApiError } from "./errors";

declare module "express-serve-static-core" {
  interface Request {
    principal?: Principal;
  }
}

export interface AuthDeps {
  apiKeys: ApiKeys;
  adminApiKey: string;
  defaultTenantId: () => Promise<string>;
  limits: Limits;
  /** failed authentications allowed per client IP per minute before 429 */
  failuresPerMinute?: number;
}

/**
 * How long a process may answer from its own view of an IP's failed-authentication window instead of asking Redis
 * before every request. The view is refreshed from Redis after this long, and every failure in this process
 * updates it from Redis's answer (consume returns the window's global count), so the limit is exact for failures
 * seen here; failures made meanwhile through OTHER processes are seen within this time.
 */
const FAILURE_VIEW_MS = 1000;

/** Checks one presented API key for a client IP: the principal, or an error (401, or 429 after too many failures). */
export type KeyAuthenticator = (token: string, ip: string) => Promise<Principal>;

/**
 * The key check shared by bearer authentication (/v1, /admin) and the console's sign-in form: the deployment's
 * ADMIN_API_KEY or a tenant key; guessing keys is throttled per client IP.
 */
export function keyAuthenticator(deps: AuthDeps): KeyAuthenticator {
  const limit = deps.failuresPerMinute ?? 30;
  const views = new Map<string, { at: number; remaining: number; msBeforeNext: number }>();
  const failuresLeft = async (ip: string) => {
    const now = Date.now();
    const v = views.get(ip);
    if (v && v.remaining > 0 && now - v.at < FAILURE_VIEW_MS) return v;
    const r = await deps.limits.remaining("auth_failures", ip, limit, 60);
    if (views.size >= 10_000) views.clear();
    const view = { at: now, ...r };
    views.set(ip, view);
    return view;
  };
  return async (token, ip) => {
    const failures = await failuresLeft(ip);
    if (failures.remaining <= 0) throw new OtpError("rate_limited", Math.max(1, Math.ceil(failures.msBeforeNext / 1000)));
    let principal: Principal | null = null;
    if (safeEqual(token, deps.adminApiKey)) {
      principal = { tenantId: await deps.defaultTenantId(), keyId: null, scopes: ["verify", "admin", "read"], superAdmin: true, actor: "admin-key" };
    } else {
      principal = await deps.apiKeys.authenticate(token);
    }
    if (!principal) {
      const left = await deps.limits.consume("auth_failures", ip, limit, 60).catch(() => ({ remaining: 0, msBeforeNext: 60_000 }));
      views.set(ip, { at: Date.now(), ...left });
      throw new ApiError(401, "unauthorized", "The API key is not valid");
    }
    return principal;
  };
}

/** Bearer authentication for /v1 and /admin; guessing keys is throttled per client IP. */
export function authenticate(deps: AuthDeps): RequestHandler {
  return bearerAuth(keyAuthenticator(deps));
}

/** `Authorization: Bearer <key>` checked by `check`; sets req.principal. */
export function bearerAuth(check: KeyAuthenticator): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction) => {
    try {
      const header = req.headers.authorization ?? "";
      const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
      if (!token) throw new ApiError(401, "unauthorized", "Authorization: Bearer <api key> is required");
      req.principal = await check(token, req.ip ?? "unknown");
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** Whether a principal holds a scope: the deployment's admin holds every one, and admin implies read. */
export function hasScope(p: Principal, scope: Scope): boolean {
  return p.superAdmin || p.scopes.includes(scope) || (scope === "read" && p.scopes.includes("admin"));
}

export function requireScope(scope: Scope): RequestHandler {
  return (req, _res, next) => {
    const p = req.principal;
    if (!p) return next(new ApiError(401, "unauthorized", "Authorization is required"));
    if (!hasScope(p, scope)) return next(new ApiError(403, "forbidden", `This key lacks the ${scope} scope`));
    next();
  };
}

/**
 * A tenant named in a path (`/tenants/{id}`): the deployment's admin may act on any, a tenant's key only on its own.
 * Anything else is `404 tenant_not_found` (whether the tenant exists is not revealed). The caller then reads the row.
 */
export function assertTenantAccess(p: Principal, id: string): void {
  if (!z.uuid().safeParse(id).success || (!p.superAdmin && p.tenantId !== id)) throw new ApiError(404, "tenant_not_found", "No such tenant");
}

/**
 * The tenant a request works on: the key's own when `asked` is absent or names it; only the deployment's admin may
 * name another (an existing one). Anything else is `404 tenant_not_found`, so ids of other tenants are not revealed.
 */
export async function askedTenant(prisma: PrismaClient, p: Principal, asked: unknown): Promise<string> {
  if (asked === undefined || asked === p.tenantId) return p.tenantId;
  if (typeof asked !== "string" || !z.uuid().safeParse(asked).success || !p.superAdmin) throw new ApiError(404, "tenant_not_found", "No such tenant");
  const t = await prisma.tenant.findUnique({ where: { id: asked }, select: { id: true } });
  if (!t) throw new ApiError(404, "tenant_not_found", "No such tenant");
  return t.id;
}

export function requireSuperAdmin(): RequestHandler {
  return (req, _res, next) => {
    if (!req.principal?.superAdmin) return next(new ApiError(403, "forbidden", "Only the deployment's ADMIN_API_KEY may do this"));
    next();
  };
}
