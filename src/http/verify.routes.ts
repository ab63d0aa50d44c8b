import express, { Router } from "express";
import { z } from "zod";
import type { PrismaClient } from "../db/prisma";
import { presentVerification } from "../otp/presenter";
import type { VerificationService } from "../otp/verification.service";
import { CHANNELS } from "../tenants/settings";
import { requireScope } from "./auth";
import { parseInput } from "./validate";
import { withIdempotency } from "./idempotency";

const purpose = z.string().regex(/^[a-z0-9_.-]{1,40}$/, "lowercase letters, digits and _.- (e.g. login, registration, change_number)");
const clientIp = z.union([z.ipv4(), z.ipv6()]);

const createBody = z.strictObject({
  to: z.string().min(1).max(40),
  channel: z.enum(CHANNELS).optional(),
  purpose: purpose.optional(),
  locale: z.string().regex(/^[a-z]{2,3}(_[A-Z]{2})?$/, "a locale such as en_US, es or pt_BR").optional(),
  clientIp: clientIp.optional(),
});

const checkBody = z
  .strictObject({
    id: z.string().min(1).max(64).optional(),
    to: z.string().min(1).max(40).optional(),
    code: z.string().regex(/^\d{4,10}$/, "the code is 4-10 digits").optional(),
    /** the second step when the first answered `pinRequired: true` (with `id`) */
    pin: z.string().regex(/^\d{6}$/, "the PIN is 6 digits").optional(),
    purpose: purpose.optional(),
    clientIp: clientIp.optional(),
  })
  .refine((b) => Boolean(b.id) !== Boolean(b.to), { message: "give either id or to", path: ["to"] })
  .refine((b) => Boolean(b.code) !== Boolean(b.pin), { message: "give either code or pin", path: ["code"] })
  .refine((b) => !b.pin || Boolean(b.id), { message: "a pin is checked by the verification's id", path: ["id"] });


/** The Verify API (docs/verify-api.md): what businesses call from their backends. */
export function verifyRoutes(deps: { verifications: VerificationService; prisma: PrismaClient }): Router {
  const router = Router();
  router.use(express.json({ limit: "16kb" }));
  router.use(requireScope("verify"));

  router.post("/verifications", async (req, res) => {
    const p = req.principal!;
    const body = parseInput(createBody, req.body);
    const key = req.header("idempotency-key") ?? undefined;
    const result = await withIdempotency(deps.prisma, p.tenantId, key, body, async () => {
      const v = await deps.verifications.create({ tenantId: p.tenantId, actor: p.actor }, body);
      return { status: 201, body: presentVerification(v) };
    });
    if (result.replayed) res.setHeader("Idempotent-Replayed", "true");
    res.status(result.status).json(result.body);
  });

  router.post("/verifications/check", async (req, res) => {
    const p = req.principal!;
    const body = parseInput(checkBody, req.body);
    const who = { tenantId: p.tenantId, actor: p.actor };
    const { pin, code, ...rest } = body;
    const r = pin !== undefined
      ? await deps.verifications.checkPin(who, { id: rest.id!, pin, clientIp: rest.clientIp })
      : await deps.verifications.check(who, { ...rest, code: code! });
    res.status(200).json(presentVerification(r.verification, { valid: r.valid, pinAttemptsRemaining: r.pinAttemptsRemaining, pinLocked: r.pinLocked }));
  });

  router.get("/verifications/:id", async (req, res) => {
    const p = req.principal!;
    const v = await deps.verifications.get({ tenantId: p.tenantId, actor: p.actor }, req.params.id);
    res.status(200).json(presentVerification(v));
  });

  router.post("/verifications/:id/cancel", async (req, res) => {
    const p = req.principal!;
    const v = await deps.verifications.cancel({ tenantId: p.tenantId, actor: p.actor }, req.params.id);
    res.status(200).json(presentVerification(v));
  });

  return router;
}
