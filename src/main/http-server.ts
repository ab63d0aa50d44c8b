import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { RequestHandler } from "express";
import { createHttpApp } from "../http/app";
import type { Core } from "./core";

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts the API (webhook, health, and whatever is mounted) on the configured port (0 = ephemeral). */
export async function startHttp(core: Core, opts: { port?: number; host?: string; mount?: RequestHandler[] } = {}): Promise<RunningServer> {
  const app = createHttpApp({
    ingest: core.ingest,
    verifyToken: core.config.WHATSAPP_VERIFY_TOKEN,
    bodyLimitBytes: core.config.WEBHOOK_BODY_LIMIT_BYTES,
    logger: core.logger,
    readiness: {
      postgres: async () => {
        await core.prisma.$queryRaw`SELECT 1`;
      },
      redis: async () => {
        await core.redis.ping();
      },
    },
    mount: opts.mount,
  });
  const server = app.listen(opts.port ?? core.config.PORT, opts.host ?? "0.0.0.0");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  // Meta delivers concurrently over long-lived connections: keep them open longer than a typical LB idle timeout.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
