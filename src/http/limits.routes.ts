import { Router, type Request } from "express";
import { z } from "zod";
import type { PrismaClient } from "../db/prisma";
import type { MessagingLimits } from "../limits/messaging-limit";
import { assertTenantAccess, requireScope } from "./auth";
import { ApiError } from "./errors";
import { parseInput } from "./validate";

const params = z.object({ id: z.string() });

/**
 * Meta's messaging limit per tenant (docs/limits.md), under /admin next to the admin API (same authentication):
 * `GET /tenants/:id/messaging-limit` (scope read) and `POST /tenants/:id/messaging-limit/refresh` (scope admin).
 * A tenant key reaches only its own tenant; any other id is `404 tenant_not_found`, like the admin API.
 */
export function limitsRoutes(deps: { prisma: PrismaClient; messagingLimits: MessagingLimits }): Router {
  const router = Router();

  async function tenantFor(req: Request): Promise<string> {
    const { id } = parseInput(params, req.params);
    const p = req.principal!;
    assertTenantAccess(p, id);
    const t = await deps.prisma.tenant.findUnique({ where: { id }, select: { id: true } });
    if (!t) throw new ApiError(404, "tenant_not_found", "No such tenant");
    return t.id;
  }

  router.get("/tenants/:id/messaging-limit", requireScope("read"), async (req, res) => {
    const id = await tenantFor(req);
    const status = await deps.messagingLimits.status(id);
    if (!status) throw new ApiError(404, "tenant_not_found", "No such tenant");
    res.json(status);
  });

  router.post("/tenants/:id/messaging-limit/refresh", requireScope("admin"), async (req, res) => {
    const id = await tenantFor(req);
    const r = await deps.messagingLimits.refresh(id, req.principal!.actor);
    if (!r.ok) {
      throw new ApiError(502, "messaging_limit_unavailable", "The Cloud API did not give the messaging-limit tier", {
        ...(r.httpStatus !== undefined ? { httpStatus: r.httpStatus } : {}),
        ...(r.code !== undefined ? { metaCode: r.code } : {}),
        ...(r.title ? { metaMessage: r.title } : {}),
      });
    }
    const status = await deps.messagingLimits.status(id);
    if (!status) throw new ApiError(404, "tenant_not_found", "No such tenant");
    res.json({ ...status, changed: r.changed });
  });

  return router;
}
