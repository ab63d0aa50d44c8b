import type { z } from "zod";
import { ApiError } from "./errors";

/** Validates a request body (or query) against a schema; a mismatch is `400 invalid_request` naming every path. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw new ApiError(
    400,
    "invalid_request",
    r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "),
    r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
  );
}
