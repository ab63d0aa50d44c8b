/**
 * What one round trip costs the client on this machine: `npx tsx bench/round-trip.ts`. Sequential PostgreSQL
 * `SELECT 1` (pg, extended protocol, as the bot's SQL layer sends it) and Redis `PING` (ioredis); CPU time of this
 * process per round trip, user and system, so the socket cost the profiles show can be compared with the machine.
 */
import IORedis from "ioredis";
import { Client } from "pg";

const N = Number(process.env.N ?? 5_000);

async function measure(label: string, once: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 500; i++) await once(); // warm-up
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await once();
  const wall = (performance.now() - t0) * 1000;
  const c = process.cpuUsage(c0);
  const f = (x: number) => (x / N).toFixed(1).padStart(6);
  process.stdout.write(`${label.padEnd(40)} wall ${f(wall)} µs   CPU ${f(c.user + c.system)} µs (user ${f(c.user)}, system ${f(c.system)})\n`);
}

async function main() {
  const pg = new Client({ connectionString: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres" });
  await pg.connect();
  const redis = new IORedis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  await measure("PostgreSQL SELECT $1 (extended protocol)", () => pg.query({ text: "SELECT $1::int AS x", values: [1] }));
  await measure("Redis PING", () => redis.ping());
  await pg.end();
  await redis.quit();
}

void main();
