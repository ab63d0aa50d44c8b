import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { PrismaClient } from "../../db/prisma";
import type { Principal } from "../../tenants/api-keys";

export interface ConsoleSession {
  principal: Principal;
  /** the per-session CSRF token: every state-changing console request carries it in X-CSRF-Token */
  csrf: string;
  createdAt: number;
}

export interface SessionOptions {
  /** a session unused this long ends */
  idleSeconds?: number;
  /** and none lives longer than this, used or not */
  maxAgeSeconds?: number;
}

/**
 * Console sessions in Redis: a random 256-bit id in the cookie; Redis holds only a SHA-256 of it (a leaked Redis
 * dump cannot be replayed as a cookie), with the principal the sign-in key gave and the CSRF token. Idle expiry
 * is Redis's TTL, renewed on each use; a revoked API key ends its sessions at their next request.
 */
export class ConsoleSessions {
  readonly idleSeconds: number;
  private readonly maxAgeMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly prisma: PrismaClient,
    private readonly keyPrefix: string,
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
    const session: ConsoleSession = { principal, csrf: randomBytes(32).toString("base64url"), createdAt: Date.now() };
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
    if (Date.now() - session.createdAt > this.maxAgeMs || !(await this.keyStillValid(session.principal))) {
      await this.redis.del(key);
      return null;
    }
    await this.redis.expire(key, this.idleSeconds);
    return session;
  }

  async destroy(id: string | undefined): Promise<void> {
    if (id && /^[A-Za-z0-9_-]{43}$/.test(id)) await this.redis.del(this.key(id));
  }

  private async keyStillValid(p: Principal): Promise<boolean> {
    if (!p.keyId) return true; // the deployment's ADMIN_API_KEY: valid while the process runs with it
    const row = await this.prisma.apiKey.findUnique({ where: { id: p.keyId }, select: { revokedAt: true } });
    return Boolean(row && !row.revokedAt);
  }
}
