import type { NextFunction, Request, RequestHandler, Response } from "express";
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

/** Bearer authentication for /v1 and /admin; guessing keys is throttled per client IP. */
export function authenticate(deps: AuthDeps): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction) => {
    try {
      const header = req.headers.authorization ?? "";
      const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
      if (!token) throw new ApiError(401, "unauthorized", "Authorization: Bearer <api key> is required");
      const ip = req.ip ?? "unknown";
      const failures = await deps.limits.remaining("auth_failures", ip, deps.failuresPerMinute ?? 30, 60);
      if (failures.remaining <= 0) throw new OtpError("rate_limited", Math.max(1, Math.ceil(failures.msBeforeNext / 1000)));
      let principal: Principal | null = null;
      if (safeEqual(token, deps.adminApiKey)) {
        principal = { tenantId: await deps.defaultTenantId(), keyId: null, scopes: ["verify", "admin", "read"], superAdmin: true, actor: "admin-key" };
      } else {
        principal = await deps.apiKeys.authenticate(token);
      }
      if (!principal) {
        await deps.limits.consume("auth_failures", ip, deps.failuresPerMinute ?? 30, 60).catch(() => undefined);
        throw new ApiError(401, "unauthorized", "The API key is not valid");
      }
      req.principal = principal;
      next();
    } catch (err) {
      next(err);
    }
  };
}

export function requireScope(scope: Scope): RequestHandler {
  return (req, _res, next) => {
    const p = req.principal;
    if (!p) return next(new ApiError(401, "unauthorized", "Authorization is required"));
    // admin implies read
    const has = p.superAdmin || p.scopes.includes(scope) || (scope === "read" && p.scopes.includes("admin"));
    if (!has) return next(new ApiError(403, "forbidden", `This key lacks the ${scope} scope`));
    next();
  };
}

export function requireSuperAdmin(): RequestHandler {
  return (req, _res, next) => {
    if (!req.principal?.superAdmin) return next(new ApiError(403, "forbidden", "Only the deployment's ADMIN_API_KEY may do this"));
    next();
  };
}
