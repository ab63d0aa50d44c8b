import type { PrismaClient } from "../db/prisma";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { TtlCache } from "../shared/ttl-cache";
import { readSettings } from "./settings";

export interface TenantRecord {
  id: string;
  name: string;
  phoneNumberId: string;
  displayPhoneNumber: string;
  wabaId: string | null;
  settings: Record<string, unknown>;
}

/**
 * Finds tenants by Meta's phone_number_id (how webhooks are routed) or id, with a short in-process cache, and
 * decrypts access tokens only when a call to the Cloud API needs one.
 */
export class TenantDirectory {
  private readonly byPhone: TtlCache<string, TenantRecord | null>;
  private readonly tokens: TtlCache<string, string>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly keyring: Keyring,
    opts: { ttlMs?: number; clock?: Clock; max?: number } = {},
  ) {
    const ttlMs = opts.ttlMs ?? 30_000;
    const max = opts.max ?? 10_000;
    this.byPhone = new TtlCache({ ttlMs, max, clock: opts.clock });
    this.tokens = new TtlCache({ ttlMs, max, clock: opts.clock });
  }

  async byPhoneNumberId(phoneNumberId: string): Promise<TenantRecord | null> {
    const hit = this.byPhone.get(phoneNumberId);
    if (hit !== undefined) return hit;
    const row = await this.prisma.tenant.findUnique({ where: { phoneNumberId } });
    const tenant = row ? toRecord(row) : null;
    this.byPhone.set(phoneNumberId, tenant);
    return tenant;
  }

  /**
   * Records the WABA id Meta's webhooks carry for a number (entry.id) when the tenant has none yet, so account
   * updates (template statuses, tier changes), which name only the WABA, reach it. A configured id is never
   * overwritten; a webhook naming another one is logged once per process.
   */
  async noteWabaId(tenant: TenantRecord, wabaId: string): Promise<void> {
    if (tenant.wabaId === wabaId) return;
    if (tenant.wabaId === null) {
      // A tenant with its own app secret signs its own webhooks, so it could name any WABA in entry.id: it learns
      // one only while no other tenant has it (else it would receive that business's account updates). A tenant
      // on the deployment's app is signed by Meta itself and may join a WABA it shares with other numbers.
      const learnt = await this.prisma.$executeRaw`
        UPDATE tenants SET waba_id = ${wabaId}, updated_at = now()
        WHERE id = ${tenant.id}::uuid AND waba_id IS NULL
          AND (app_secret_enc IS NULL OR NOT EXISTS (SELECT 1 FROM tenants o WHERE o.waba_id = ${wabaId} AND o.id <> ${tenant.id}::uuid))`;
      if (learnt === 1) {
        tenant.wabaId = wabaId;
        return;
      }
    }
    if (!this.mismatched.has(tenant.id)) {
      this.mismatched.add(tenant.id);
      this.onWabaMismatch?.(tenant, wabaId);
    }
  }
  private readonly mismatched = new Set<string>();

  /** set by the core to log a webhook whose WABA id differs from the tenant's configured one */
  onWabaMismatch?: (tenant: TenantRecord, wabaId: string) => void;

  /** every tenant of a WhatsApp Business Account (account updates are routed by it) */
  async byWabaId(wabaId: string): Promise<TenantRecord[]> {
    const rows = await this.prisma.tenant.findMany({ where: { wabaId } });
    return rows.map(toRecord);
  }

  async accessToken(tenantId: string): Promise<string> {
    const hit = this.tokens.get(tenantId);
    if (hit !== undefined) return hit;
    const row = await this.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId }, select: { accessTokenEnc: true } });
    const token = this.keyring.decryptString("tenant-token", row.accessTokenEnc);
    this.tokens.set(tenantId, token);
    return token;
  }

  /** Creates or updates the tenant described by the environment (the default tenant). */
  async upsertDefault(input: { phoneNumberId: string; displayPhoneNumber: string; accessToken: string; name?: string }): Promise<TenantRecord> {
    const accessTokenEnc = this.keyring.encrypt("tenant-token", input.accessToken);
    const row = await this.prisma.tenant.upsert({
      where: { phoneNumberId: input.phoneNumberId },
      create: { name: input.name ?? "default", phoneNumberId: input.phoneNumberId, displayPhoneNumber: input.displayPhoneNumber, accessTokenEnc },
      update: { displayPhoneNumber: input.displayPhoneNumber || undefined, accessTokenEnc },
    });
    this.invalidate();
    return toRecord(row);
  }

  invalidate(): void {
    this.byPhone.clear();
    this.tokens.clear();
  }
}

function toRecord(row: { id: string; name: string; phoneNumberId: string; displayPhoneNumber: string; wabaId: string | null; settings: unknown }): TenantRecord {
  return {
    id: row.id,
    name: row.name,
    phoneNumberId: row.phoneNumberId,
    displayPhoneNumber: row.displayPhoneNumber,
    wabaId: row.wabaId,
    settings: (row.settings ?? {}) as Record<string, unknown>,
  };
}

/** A tenant with its settings read through the schema (defaults filled in). */
export async function loadTenantSettings(prisma: PrismaClient, tenantId: string) {
  const row = await prisma.tenant.findUniqueOrThrow({ where: { id: tenantId }, select: { id: true, name: true, settings: true, phoneNumberId: true } });
  return { ...row, settings: readSettings(row.settings) };
}
