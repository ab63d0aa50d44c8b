import { Router, type Request } from "express";
import type { Config } from "../config/env";
import type { PrismaClient } from "../db/prisma";
import type { FallbackBudget } from "../otp/fallback-budget";
import { readSettings } from "../tenants/settings";
import { templateCatalogue } from "../tenants/templates";
import { assertTenantAccess, requireScope } from "./auth";
import { ApiError } from "./errors";


/**
 * The tenant's WhatsApp templates with Meta's last known status, and today's spend on paid code channels
 * (docs/templates.md). Mounted under /admin behind the admin API's authentication; like the admin API, a tenant's
 * own key reaches only its own tenant and any other id is 404 `tenant_not_found`.
 */
export function templatesRoutes(deps: {
  prisma: PrismaClient;
  config: Pick<Config, "WHATSAPP_OTP_TEMPLATE" | "WHATSAPP_OTP_TEMPLATE_LANGUAGE">;
  budget: Pick<FallbackBudget, "usage">;
}): Router {
  const { prisma } = deps;
  const router = Router();

  async function tenantFor(req: Request, id: string) {
    const p = req.principal!;
    assertTenantAccess(p, id);
    const t = await prisma.tenant.findUnique({ where: { id }, select: { id: true, settings: true } });
    if (!t) throw new ApiError(404, "tenant_not_found", "No such tenant");
    return t;
  }

  router.get("/tenants/:id/templates", requireScope("read"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    res.json(await templateCatalogue(prisma, t, deps.config));
  });

  router.get("/tenants/:id/usage", requireScope("read"), async (req, res) => {
    const t = await tenantFor(req, req.params.id as string);
    res.json({ fallbackSpend: await deps.budget.usage(t.id, readSettings(t.settings)) });
  });

  return router;
}
