import { randomUUID } from "node:crypto";
import { Client } from "pg";
import { loadConfig } from "../config/env";
import { Keyring, type KeyPurpose } from "../shared/crypto";
import { hashCode } from "../otp/codes";
import { STEP_UP_PURPOSE_PREFIX } from "../tenants/step-up-purpose";

/**
 * `npm run secrets:reencrypt`: the second step of a SECRETS_KEY rotation (docs/security.md). With the new key in
 * SECRETS_KEY and the old one(s) in SECRETS_KEY_PREVIOUS, it re-encrypts every stored ciphertext made with an old
 * key under the current one, and re-hashes the keyed hashes it can (a pending code's hash, from its encrypted copy).
 *
 * - Idempotent: rows already under the current key are not touched; a second run reports 0 re-encrypted.
 * - Batched (`--batch=<n>`, 500 by default), each row one conditional UPDATE (`… WHERE id = $1 AND col = $old`), so
 *   it runs against a live system: a row changed meanwhile is left for the next run, never overwritten.
 * - `--dry-run` counts without writing.
 * - Reports what still depends on an old key: API key hashes (re-hashed with the current key when the key is next
 *   used: the secret is never stored), PIN reset links (short-lived), ended verifications' code hashes (never checked
 *   again), and a final scan of every text and JSON column of every table for ciphertexts of other keys.
 *
 * Exit 0 when no ciphertext of an old key remains, 1 when some remain (e.g. unreadable), 2 on configuration errors.
 */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

export interface ReencryptReport {
  currentKeyId: string;
  previousKeyIds: string[];
  dryRun: boolean;
  /** per `table.column`: ciphertexts (or hashes) moved to the current key */
  reencrypted: Record<string, number>;
  rehashed: Record<string, number>;
  /** per `table.column`: values that no key of the keyring could read (left as they are) */
  unreadable: Record<string, number>;
  /** keyed hashes still made with an old key (or untagged), that cannot be re-hashed without their secret */
  oldKeyHashes: { apiKeys: number; pinResetLinks: number; endedVerificationCodes: number };
  /** the final scan: every text/json column holding a ciphertext of another key than the current one */
  remainingCiphertexts: Record<string, number>;
}

interface Column {
  table: string;
  column: string;
  purpose: KeyPurpose;
}

/** Plain ciphertext columns (`v1.<keyId>.…`). */
const CIPHER_COLUMNS: Column[] = [
  { table: "tenants", column: "access_token_enc", purpose: "tenant-token" },
  { table: "tenants", column: "app_secret_enc", purpose: "tenant-token" },
  { table: "held_changes", column: "payload_enc", purpose: "held-change" },
];

export async function reencryptAll(db: Queryable, keyring: Keyring, opts: { batchSize?: number; dryRun?: boolean } = {}): Promise<ReencryptReport> {
  const batchSize = Math.max(1, opts.batchSize ?? 500);
  const dryRun = opts.dryRun ?? false;
  const cur = keyring.keyId;
  const report: ReencryptReport = {
    currentKeyId: cur,
    previousKeyIds: keyring.previousKeyIds,
    dryRun,
    reencrypted: {},
    rehashed: {},
    unreadable: {},
    oldKeyHashes: { apiKeys: 0, pinResetLinks: 0, endedVerificationCodes: 0 },
    remainingCiphertexts: {},
  };
  const add = (bucket: Record<string, number>, key: string, n = 1) => {
    bucket[key] = (bucket[key] ?? 0) + n;
  };
  const notCurrentCipher = (expr: string) => `(${expr} LIKE 'v1.%' AND ${expr} NOT LIKE 'v1.${cur}.%')`;

  // pages through rows matching `where` by id; `handle` returns false for a row it leaves (so paging moves on)
  async function page(table: string, select: string, where: string, handle: (row: Record<string, unknown>) => Promise<void>) {
    let last = "";
    for (;;) {
      const { rows } = await db.query(`SELECT id::text AS id, ${select} FROM ${table} WHERE ${where} AND id::text > $1 ORDER BY id::text LIMIT ${batchSize}`, [last]);
      for (const row of rows) await handle(row);
      if (rows.length < batchSize) return;
      last = String(rows[rows.length - 1]!.id);
    }
  }

  for (const c of CIPHER_COLUMNS) {
    const name = `${c.table}.${c.column}`;
    await page(c.table, `${c.column} AS v`, notCurrentCipher(c.column), async (row) => {
      const old = String(row.v);
      let next: string;
      try {
        next = keyring.encrypt(c.purpose, keyring.decrypt(c.purpose, old));
      } catch {
        return add(report.unreadable, name);
      }
      if (!dryRun) {
        const r = await db.query(`UPDATE ${c.table} SET ${c.column} = $1 WHERE id = $2::uuid AND ${c.column} = $3`, [next, row.id, old]);
        if (!r.rowCount) return;
      }
      add(report.reencrypted, name);
    });
  }

  // the events signing secret, inside tenants.settings
  {
    const name = "tenants.settings.events.secretEnc";
    const expr = `(settings->'events'->>'secretEnc')`;
    await page("tenants", `${expr} AS v`, `${expr} IS NOT NULL AND ${notCurrentCipher(expr)}`, async (row) => {
      const old = String(row.v);
      let next: string;
      try {
        next = keyring.encrypt("tenant-token", keyring.decrypt("tenant-token", old));
      } catch {
        return add(report.unreadable, name);
      }
      if (!dryRun) {
        const r = await db.query(
          `UPDATE tenants SET settings = jsonb_set(settings::jsonb, '{events,secretEnc}', to_jsonb($1::text)) WHERE id = $2::uuid AND ${expr} = $3`,
          [next, row.id, old],
        );
        if (!r.rowCount) return;
      }
      add(report.reencrypted, name);
    });
  }

  // pending codes: the encrypted copy is re-encrypted, and the hash re-made from it (checked against the old one first)
  await page(
    "verifications",
    `code_enc AS enc, code_hash AS hash, purpose`,
    `code_enc IS NOT NULL AND (${notCurrentCipher("code_enc")} OR code_hash NOT LIKE 'h1.${cur}.%')`,
    async (row) => {
      const id = String(row.id);
      const oldEnc = String(row.enc);
      const oldHash = String(row.hash);
      // a step-up code's carrier (src/tenants/step-up.ts): its copy moves; its hash is of nothing anyone knows (it
      // approves nothing) and is simply made anew; the code's own hash is on the held change (below)
      if (String(row.purpose).startsWith(STEP_UP_PURPOSE_PREFIX)) {
        let next = oldEnc;
        try {
          if (!keyring.isCurrent(oldEnc)) next = keyring.encrypt("otp-code", keyring.decryptString("otp-code", oldEnc));
        } catch {
          return add(report.unreadable, "verifications.code_enc");
        }
        const nextHash = oldHash.startsWith(`h1.${cur}.`) ? oldHash : keyring.keyedHash("otp-hash", id, randomUUID());
        if (!dryRun && !(await db.query(`UPDATE verifications SET code_enc = $1, code_hash = $2 WHERE id = $3::uuid AND code_enc = $4`, [next, nextHash, id, oldEnc])).rowCount) return;
        if (next !== oldEnc) add(report.reencrypted, "verifications.code_enc");
        return;
      }
      let code: string;
      try {
        code = keyring.decryptString("otp-code", oldEnc);
      } catch {
        return add(report.unreadable, "verifications.code_enc");
      }
      const hashOk = keyring.verifyHash("otp-hash", oldHash, id, code).ok;
      const nextEnc = keyring.isCurrent(oldEnc) ? oldEnc : keyring.encrypt("otp-code", code);
      const nextHash = hashOk ? hashCode(keyring, id, code) : oldHash;
      if (nextEnc === oldEnc && nextHash === oldHash) return;
      if (!dryRun) {
        const r = await db.query(`UPDATE verifications SET code_enc = $1, code_hash = $2 WHERE id = $3::uuid AND code_enc = $4 AND code_hash = $5`, [nextEnc, nextHash, id, oldEnc, oldHash]);
        if (!r.rowCount) return;
      }
      if (nextEnc !== oldEnc) add(report.reencrypted, "verifications.code_enc");
      if (nextHash !== oldHash) add(report.rehashed, "verifications.code_hash");
      if (!hashOk) add(report.unreadable, "verifications.code_hash");
    },
  );

  // pending step-up codes: the hash on the held change re-made from the code's copy on its carrier (checked first)
  await page(
    "held_changes h",
    `h.code_hash AS hash, (SELECT v.code_enc FROM verifications v WHERE v.id = h.verification_id AND v.status = 'pending') AS enc`,
    `h.status = 'pending' AND h.code_hash IS NOT NULL AND h.code_hash NOT LIKE 'h1.${cur}.%'`,
    async (row) => {
      const id = String(row.id);
      const oldHash = String(row.hash);
      let code: string;
      try {
        code = keyring.decryptString("otp-code", String(row.enc));
      } catch {
        return add(report.unreadable, "held_changes.code_hash");
      }
      if (!keyring.verifyHash("otp-hash", oldHash, `step-up:${id}`, code).ok) return add(report.unreadable, "held_changes.code_hash");
      const nextHash = keyring.keyedHash("otp-hash", `step-up:${id}`, code);
      if (!dryRun && !(await db.query(`UPDATE held_changes SET code_hash = $1 WHERE id = $2::uuid AND code_hash = $3`, [nextHash, id, oldHash])).rowCount) return;
      add(report.rehashed, "held_changes.code_hash");
    },
  );

  // what cannot be re-hashed here: counted, so the operator knows what dropping the old key would break
  const count = async (sql: string) => Number((await db.query<{ n: string }>(sql)).rows[0]?.n ?? 0);
  report.oldKeyHashes.apiKeys = await count(`SELECT count(*)::text AS n FROM api_keys WHERE revoked_at IS NULL AND secret_hash NOT LIKE 'h1.${cur}.%'`);
  report.oldKeyHashes.pinResetLinks = await count(
    `SELECT count(*)::text AS n FROM pin_reset_tokens WHERE used_at IS NULL AND expires_at > now() AND token_hash NOT LIKE 'h1.${cur}.%'`,
  );
  report.oldKeyHashes.endedVerificationCodes = await count(`SELECT count(*)::text AS n FROM verifications WHERE code_enc IS NULL AND code_hash NOT LIKE 'h1.${cur}.%'`);

  report.remainingCiphertexts = await scanForOtherKeys(db, cur);
  return report;
}

/**
 * Every text, varchar and json(b) column of every table in the current schema, searched for `v1.<keyId>.` of any
 * key id other than `currentKeyId`: per `table.column`, how many rows hold one.
 */
export async function scanForOtherKeys(db: Queryable, currentKeyId: string): Promise<Record<string, number>> {
  const { rows: cols } = await db.query<{ table_name: string; column_name: string }>(
    `SELECT c.table_name, c.column_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
        AND c.data_type IN ('text', 'character varying', 'json', 'jsonb', 'ARRAY')
        AND c.table_name <> '_prisma_migrations'
      ORDER BY 1, 2`,
  );
  const out: Record<string, number> = {};
  for (const c of cols) {
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM "${c.table_name}" WHERE "${c.column_name}"::text ~ $1`,
      [`v1\\.(?!${currentKeyId})[0-9a-f]{8}\\.`],
    );
    const n = Number(rows[0]?.n ?? 0);
    if (n > 0) out[`${c.table_name}.${c.column_name}`] = n;
  }
  return out;
}

function printReport(r: ReencryptReport, out: (l: string) => void): void {
  const line = (label: string, bucket: Record<string, number>) => {
    const entries = Object.entries(bucket);
    out(`${label}: ${entries.length === 0 ? "none" : entries.map(([k, n]) => `${k} ${n}`).join(", ")}`);
  };
  out(`current key ${r.currentKeyId}; previous ${r.previousKeyIds.join(", ") || "none"}${r.dryRun ? " (dry run: nothing written)" : ""}`);
  line("re-encrypted", r.reencrypted);
  line("re-hashed", r.rehashed);
  line("unreadable (no key of the keyring)", r.unreadable);
  out(
    `hashes still under an old key: ${r.oldKeyHashes.apiKeys} API keys (re-hashed on their next use), ${r.oldKeyHashes.pinResetLinks} live PIN reset links, ` +
      `${r.oldKeyHashes.endedVerificationCodes} ended verifications (never checked again)`,
  );
  line("ciphertexts of other keys left (full scan)", r.remainingCiphertexts);
}

export async function main(args: string[], out: (l: string) => void = (l) => process.stdout.write(l + "\n")): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const batch = Number(/^--batch=(\d+)$/.exec(args.find((a) => a.startsWith("--batch=")) ?? "")?.[1] ?? 500);
  const keyring = Keyring.fromBase64(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS ?? "");
  const db = new Client({ connectionString: config.DATABASE_URL });
  await db.connect();
  try {
    const report = await reencryptAll(db as unknown as Queryable, keyring, { batchSize: batch, dryRun: args.includes("--dry-run") });
    if (args.includes("--json")) out(JSON.stringify(report));
    else printReport(report, out);
    return Object.keys(report.remainingCiphertexts).length === 0 ? 0 : 1;
  } finally {
    await db.end();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
