import { createHash } from "node:crypto";
import type { PrismaClient } from "../db/prisma";
import { Prisma } from "../db/prisma";
import { ApiError } from "./errors";

const KEY = /^[A-Za-z0-9_\-:.]{1,255}$/;

/**
 * Idempotency-Key for create requests: the first request with a key stores its answer; a repeat with the same
 * key and body gets that answer again and nothing is sent; the same key with another body is refused (422);
 * a repeat while the first is still running gets 409.
 */
export async function withIdempotency(
  prisma: PrismaClient,
  tenantId: string,
  key: string | undefined,
  body: unknown,
  run: () => Promise<{ status: number; body: unknown }>,
): Promise<{ status: number; body: unknown; replayed: boolean }> {
  if (key === undefined) return { ...(await run()), replayed: false };
  if (!KEY.test(key)) throw new ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 characters of letters, digits and -_:.");
  const requestHash = createHash("sha256").update(JSON.stringify(body ?? null)).digest("hex");
  const claimed = await prisma.idempotencyRecord.createMany({ data: [{ tenantId, key, requestHash }], skipDuplicates: true });
  if (claimed.count === 0) {
    const prior = await prisma.idempotencyRecord.findUnique({ where: { tenantId_key: { tenantId, key } } });
    if (!prior) throw new ApiError(409, "idempotency_conflict", "Retry the request");
    if (prior.requestHash !== requestHash) throw new ApiError(422, "idempotency_key_reused", "This Idempotency-Key was used with a different request body");
    if (prior.status === null) throw new ApiError(409, "idempotency_in_progress", "A request with this Idempotency-Key is still being processed");
    return { status: prior.status, body: prior.response, replayed: true };
  }
  try {
    const result = await run();
    await prisma.idempotencyRecord.update({
      where: { tenantId_key: { tenantId, key } },
      data: { status: result.status, response: result.body as Prisma.InputJsonValue },
    });
    return { ...result, replayed: false };
  } catch (err) {
    // a failed request does not consume the key: the client may retry it
    await prisma.idempotencyRecord.delete({ where: { tenantId_key: { tenantId, key } } }).catch(() => undefined);
    throw err;
  }
}
