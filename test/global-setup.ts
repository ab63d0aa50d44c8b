import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { migrateDeploy } from "../src/db/migrate";
import { ADMIN_DATABASE_URL, databaseUrl } from "./helpers/env";

/**
 * Creates this run's own template database and migrates it with `prisma migrate deploy`, exactly as production
 * does; test files copy it (test/helpers/db.ts). Only databases named wabot_t* / wabot_tpl* that are over three
 * hours old (left by a killed run) are cleaned up: a database a person may be using is never touched.
 */
export default async function globalSetup(): Promise<void> {
  const epoch = Math.floor(Date.now() / 1000);
  const template = `wabot_tpl_${epoch}_${randomBytes(4).toString("hex")}`;
  const admin = new Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    const stale = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname ~ '^wabot_(t|tpl)_[0-9]+_[0-9a-f]+$'`);
    for (const { datname } of stale.rows) {
      const created = Number(datname.split("_")[2]);
      if (epoch - created > 3 * 3600) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await admin.query(`CREATE DATABASE "${template}"`);
  } finally {
    await admin.end();
  }
  migrateDeploy(databaseUrl(template));
  process.env.WABOT_TEST_TEMPLATE_DB = template; // inherited by the Jest workers
}
