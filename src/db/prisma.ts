import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient, Prisma } from "../generated/prisma/client";

export { Prisma, PrismaClient };
export type Tx = Prisma.TransactionClient;

/** One client per process; the pg pool behind the adapter is sized for the worker concurrency. */
export function createPrisma(databaseUrl: string, poolSize = 20): PrismaClient {
  const adapter = new PrismaPg({ connectionString: databaseUrl, max: poolSize });
  return new PrismaClient({ adapter });
}

/** Interactive transaction with limits that fit a worker that may wait on a per-contact lock. */
export function transaction<T>(prisma: PrismaClient, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return prisma.$transaction(fn, { maxWait: 10_000, timeout: 30_000 });
}
