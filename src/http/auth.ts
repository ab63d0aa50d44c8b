import type { NextFunction, Request, RequestHandler, Response } from "express";
import { z } from "zod";
import type { PrismaClient } from "../db/prisma";
import { OtpError } from "../otp/errors";
import type { Limits } from "../otp/limits";
import { safeEqual } from "../shared/crypto";
import { ipLimitKey } from "../shared/ip";
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
  /** failed authentications allowed per minute per (client address, key prefix) before wrong keys get 429 */
  failuresPerMinute?: number;
  /** and per client address across every prefix (default 10 × failuresPerMinute) */
  addressFailuresPerMinute?: number;
}

/** Checks one presented API key for a client IP: the principal, or an error (401, or 429 after too many failures). */
export type KeyAuthenticator = (token: string, ip: string) => Promise<Principal>;

/** The `<prefix>` of a tenant key `wbk_<prefix>_…` (the ADMIN_API_KEY and malformed keys have none). */
const KEY_PREFIX = /^wbk_([a-f0-9]{16})_/;

/**
 * The key check shared by bearer authentication (/v1, /admin) and the console's sign-in form: the deployment's
 * ADMIN_API_KEY or a tenant key.
 *
 * A key that authenticates is never refused, however many wrong keys came from the same address before (many
 * tenants may sit behind one proxy or NAT address). Failures are counted per (client address, key prefix), the
 * keys without a tenant-key prefix (the ADMIN_API_KEY's form, garbage) sharing one bucket per address, and per
 * address across all of them (a wider ceiling); past either, a wrong key is answered 429 with Retry-After instead
 * of 401. Every wrong key does the same work (one prefix lookup, the keyring's HMACs, two limit updates) whether
 * its prefix exists or not.
 */
export function keyAuthenticator(deps: AuthDeps): KeyAuthenticator {
  const failed = authFailures(deps.limits, { perPrefix: deps.failuresPerMinute, perAddress: deps.addressFailuresPerMinute });
  return async (token, ip) => {
    let principal: Principal | null = null;
    if (safeEqual(token, deps.adminApiKey)) {
      principal = { tenantId: await deps.defaultTenantId(), keyId: null, scopes: ["verify", "admin", "read"], superAdmin: true, actor: "admin-key" };
    } else {
      principal = await deps.apiKeys.authenticate(token);
    }
    if (principal) return principal;
    const retryAfter = await failed(token, ip);
    if (retryAfter !== null) throw new OtpError("rate_limited", retryAfter);
    throw new ApiError(401, "unauthorized", "The API key is not valid");
  };
}

/**
 * Counts one failed key check of a client address (`ip` canonicalised: one key per IPv4 address, per IPv6 /64,
 * whatever its spelling) in its (address, key prefix) window and its address-wide window. Resolves to the
 * Retry-After seconds when either window was already full (the caller answers 429), else null (401). Shared by every
 * place a key is checked (the Bearer APIs, the console's sign-in, /metrics), so they share the windows.
 */
export function authFailures(limits: Pick<Limits, "consume">, opts: { perPrefix?: number; perAddress?: number } = {}): (token: string, ip: string) => Promise<number | null> {
  const limit = opts.perPrefix ?? 30;
  const addressLimit = opts.perAddress ?? limit * 10;
  /** one failure in a window: its Retry-After when the window was already full, else null */
  const failure = (key: string, points: number) =>
    limits.consume("auth_failures", key, points, 60).then(
      () => null,
      (err: unknown) => (err instanceof OtpError ? (err.retryAfterSeconds ?? 60) : 60), // Redis down: throttled
    );
  return async (token, ip) => {
    const address = ipLimitKey(ip);
    const prefix = KEY_PREFIX.exec(token)?.[1] ?? "-";
    const [narrow, wide] = await Promise.all([failure(`${address}|${prefix}`, limit), failure(`${address}|*`, addressLimit)]);
    return narrow !== null || wide !== null ? Math.max(narrow ?? 1, wide ?? 1) : null;
  };
}

/** Bearer authentication for /v1 and /admin; wrong keys are throttled per client address and key prefix. */
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
