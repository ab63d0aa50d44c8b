import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../db/prisma";
import { BackgroundTasks } from "../shared/background";
import { systemClock, type Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { TtlCache } from "../shared/ttl-cache";

export const SCOPES = ["verify", "admin", "read"] as const;
export type Scope = (typeof SCOPES)[number];

/** Who is calling the API. The environment's ADMIN_API_KEY is the super-admin (every tenant, break-glass). */
export interface Principal {
  tenantId: string;
  keyId: string | null;
  scopes: Scope[];
  superAdmin: boolean;
  /** for the audit trail: "admin-key" or "api-key:<id>" */
  actor: string;
}

const KEY_PATTERN = /^wbk_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

/**
 * Per-tenant API keys `wbk_<prefix>_<secret>`: the prefix finds the row, the secret is compared as a keyed hash
 * in constant time. The full key is returned once, at creation, and never stored.
 */
/**
 * How long a process reuses a successful key lookup. A revocation through this process takes effect at once; one
 * made through another process (or in the database) within this time.
 */
export const API_KEY_CACHE_MS = 1000;

export class ApiKeys {
  /** keys whose lastUsedAt was written within the last minute */
  private readonly touched: TtlCache<string, true>;
  /** prefix:HMAC(secret) → the principal of a key that authenticated, and when it was looked up */
  private readonly recent: TtlCache<string, Principal>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly keyring: Keyring,
    private readonly background = new BackgroundTasks(),
    private readonly clock: Clock = systemClock,
  ) {
    this.recent = new TtlCache({ ttlMs: API_KEY_CACHE_MS, max: 10_000, clock });
    this.touched = new TtlCache({ ttlMs: 60_000, max: 10_000, clock });
  }

  async create(tenantId: string, scopes: Scope[], name = ""): Promise<{ id: string; key: string; prefix: string; scopes: Scope[]; name: string; createdAt: Date }> {
    const prefix = randomBytes(8).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    const row = await this.prisma.apiKey.create({
      data: { tenantId, name, prefix, secretHash: this.keyring.keyedHash("api-key", secret), scopes },
    });
    return { id: row.id, key: `wbk_${prefix}_${secret}`, prefix, scopes, name, createdAt: row.createdAt };
  }

  async revoke(id: string): Promise<boolean> {
    const res = await this.prisma.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
    this.recent.deleteWhere((principal) => principal.keyId === id);
    return res.count > 0;
  }

  /**
   * The principal for a presented key, or null. Does the same work for a malformed, unknown or wrong key: one
   * lookup by prefix, then one HMAC per key of the keyring (SECRETS_KEY and SECRETS_KEY_PREVIOUS) compared in
   * constant time against the row's hash, or against nothing when there is no row.
   */
  async authenticate(presented: string): Promise<Principal | null> {
    const m = KEY_PATTERN.exec(presented);
    const prefix = m?.[1] ?? "0000000000000000";
    const secret = m?.[2] ?? "";
    const cacheKey = `${prefix}:${this.keyring.hmac("api-key", secret)}`;
    const hit = m ? this.recent.get(cacheKey) : undefined;
    if (hit) {
      this.touch(hit.keyId!);
      return { ...hit, scopes: [...hit.scopes] };
    }
    const row = await this.prisma.apiKey.findUnique({ where: { prefix } });
    const check = this.keyring.verifyHash("api-key", row?.secretHash ?? null, secret);
    if (!m || !row || !check.ok || row.revokedAt) {
      this.recent.delete(cacheKey);
      return null;
    }
    // hashed with a previous SECRETS_KEY (or before hashes carried a key id): re-hash with the current key now that
    // the secret is at hand, so the old key can be dropped (npm run secrets:reencrypt cannot do this: no secret)
    if (!check.current) {
      const rehashed = this.keyring.keyedHash("api-key", secret);
      void this.background.run(() => this.prisma.apiKey.updateMany({ where: { id: row.id, secretHash: row.secretHash }, data: { secretHash: rehashed } }))?.catch(() => undefined);
    }
    this.touch(row.id);
    const principal: Principal = { tenantId: row.tenantId, keyId: row.id, scopes: row.scopes as Scope[], superAdmin: false, actor: `api-key:${row.id}` };
    this.recent.set(cacheKey, principal);
    return { ...principal, scopes: [...principal.scopes] };
  }

  /** lastUsedAt, at most once a minute per key, off the request path. */
  private touch(id: string): void {
    if (this.touched.has(id)) return;
    this.touched.set(id, true);
    const now = this.clock.now();
    void this.background.run(() => this.prisma.apiKey.update({ where: { id }, data: { lastUsedAt: now } }))?.catch(() => undefined);
  }
}
