import { Client } from "pg";
import { ADMIN_DATABASE_URL } from "./helpers/env";

export default async function globalTeardown(): Promise<void> {
  const template = process.env.WABOT_TEST_TEMPLATE_DB;
  if (!template) return;
  const admin = new Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
