import { Router } from "express";

export type ReadinessCheck = () => Promise<void>;

/** /healthz: the process runs. /readyz: PostgreSQL and Redis answer (a load balancer uses it; workers are not checked). */
export function healthRoutes(checks: Record<string, ReadinessCheck>, timeoutMs = 2_000): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.status(200).json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await Promise.race([check(), new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), timeoutMs).unref())]);
          return [name, "ok"] as const;
        } catch (err) {
          return [name, err instanceof Error ? oneLine(err.message) : "down"] as const;
        }
      }),
    );
    const ready = results.every(([, r]) => r === "ok");
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "unavailable", checks: Object.fromEntries(results) });
  });
  return router;
}

/** The last line of a failure, short: Prisma's messages span lines and quote our source (never shown to a caller). */
function oneLine(message: string): string {
  const lines = message.split("\n").map((l) => l.trim()).filter(Boolean);
  return (lines[lines.length - 1] ?? "down").slice(0, 200);
}
