import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import { PrismaClient, Prisma } from "../generated/prisma/client";
import { registerPool } from "./sql";

export { Prisma, PrismaClient };
export type Tx = Prisma.TransactionClient;

/**
 * One client per process; the pg pool behind the adapter is sized for the worker concurrency. The same pool
 * serves the hand-written SQL of the hot paths (`sqlFor(prisma)` in ./sql.ts) and is closed by `$disconnect()`.
 */
export function createPrisma(databaseUrl: string, poolSize = 20): PrismaClient {
  // a checkout waits at most 30 s: code that holds one connection while it waits for a second from the same pool
  // would otherwise wait for ever once every connection is held that way (an error is retried by the job instead)
  const pool = new Pool({ connectionString: databaseUrl, max: poolSize, connectionTimeoutMillis: 30_000 });
  // an idle connection that dies (a PostgreSQL restart) must not crash the process; the pool replaces it
  pool.on("error", () => undefined);
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  registerPool(prisma, pool);
  const disconnect = prisma.$disconnect.bind(prisma);
  prisma.$disconnect = async () => {
    await disconnect();
    if (!pool.ending) await pool.end();
  };
  return prisma;
}

/** Interactive transaction with limits that fit a worker that may wait on a per-contact lock. */
export function transaction<T>(prisma: PrismaClient, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return prisma.$transaction(fn, { maxWait: 10_000, timeout: 30_000 });
}
