import { createHash, randomBytes } from "node:crypto";
import { safeEqual, type Keyring } from "../../shared/crypto";
import type { Redis } from "ioredis";
import type { PrismaClient } from "../../db/prisma";
import type { Principal } from "../../tenants/api-keys";

export interface ConsoleSession {
  principal: Principal;
  /** the per-session CSRF token: every state-changing console request carries it in X-CSRF-Token */
  csrf: string;
  createdAt: number;
  /**
   * What the sign-in key was: for the deployment's ADMIN_API_KEY a keyed hash of it (`admin:<hex>`), for a tenant key
   * `api-key:<row id>`. A session is valid only while that key still authenticates: ADMIN_API_KEY unchanged, the
   * tenant key not revoked. Sessions without one (made before this field) are refused.
   */
  keyFingerprint?: string;
}

export interface SessionOptions {
  /** a session unused this long ends */
  idleSeconds?: number;
  /** and none lives longer than this, used or not */
  maxAgeSeconds?: number;
}

/** The fingerprint of the deployment's ADMIN_API_KEY a session made from it carries (see ConsoleSession.keyFingerprint). */
export function adminKeyFingerprint(keyring: Keyring, adminApiKey: string): string {
  return `admin:${keyring.hmac("api-key", "console-session", adminApiKey)}`;
}

/**
 * Console sessions in Redis: a random 256-bit id in the cookie; Redis holds only a SHA-256 of it (a leaked Redis
 * dump cannot be replayed as a cookie), with the principal the sign-in key gave and the CSRF token. Idle expiry
 * is Redis's TTL, renewed on each use. A session is bound to its sign-in key: a revoked API key ends its sessions at
 * their next request, and a session opened with ADMIN_API_KEY ends once the deployment runs with another one.
 */
export class ConsoleSessions {
  readonly idleSeconds: number;
  private readonly maxAgeMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly prisma: PrismaClient,
    private readonly keyPrefix: string,
    /** adminKeyFingerprint() of the ADMIN_API_KEY this process runs with */
    private readonly adminFingerprint: string,
    opts: SessionOptions = {},
  ) {
    this.idleSeconds = opts.idleSeconds ?? 30 * 60;
    this.maxAgeMs = (opts.maxAgeSeconds ?? 12 * 60 * 60) * 1000;
  }

  private key(id: string): string {
    return `${this.keyPrefix}:console:session:${createHash("sha256").update(id).digest("hex")}`;
  }

  async create(principal: Principal): Promise<{ id: string; session: ConsoleSession }> {
    const id = randomBytes(32).toString("base64url");
    const session: ConsoleSession = { principal, csrf: randomBytes(32).toString("base64url"), createdAt: Date.now(), keyFingerprint: this.fingerprintOf(principal) };
    await this.redis.set(this.key(id), JSON.stringify(session), "EX", this.idleSeconds);
    return { id, session };
  }

  /** The live session for a cookie value (its idle time restarts), or null. */
  async get(id: string | undefined): Promise<ConsoleSession | null> {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const key = this.key(id);
    const raw = await this.redis.get(key);
    if (!raw) return null;
    const session = JSON.parse(raw) as ConsoleSession;
    if (Date.now() - session.createdAt > this.maxAgeMs || !(await this.keyStillValid(session))) {
      await this.redis.del(key);
      return null;
    }
    await this.redis.expire(key, this.idleSeconds);
    return session;
  }

  async destroy(id: string | undefined): Promise<void> {
    if (id && /^[A-Za-z0-9_-]{43}$/.test(id)) await this.redis.del(this.key(id));
  }

  private fingerprintOf(p: Principal): string {
    return p.superAdmin ? this.adminFingerprint : `api-key:${p.keyId ?? ""}`;
  }

  /** The session's sign-in key still authenticates as the session's principal. */
  private async keyStillValid(session: ConsoleSession): Promise<boolean> {
    const p = session.principal;
    const fp = session.keyFingerprint;
    if (!fp || !safeEqual(fp, this.fingerprintOf(p))) return false;
    // the deployment's ADMIN_API_KEY: valid while this process runs with the same key (the fingerprint says so)
    if (p.superAdmin) return true;
    if (!p.keyId) return false;
    const row = await this.prisma.apiKey.findUnique({ where: { id: p.keyId }, select: { revokedAt: true, tenantId: true } });
    return Boolean(row && !row.revokedAt && row.tenantId === p.tenantId);
  }
}
