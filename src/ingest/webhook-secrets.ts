import type { Clock } from "../shared/clock";
import { TtlCache } from "../shared/ttl-cache";

/**
 * Which app secret may sign webhooks for which business number. Most deployments have one Meta app
 * (WHATSAPP_APP_SECRET) for every number; a tenant whose number belongs to another app has that app's secret
 * (tenants.app_secret_enc). A webhook is authentic when one of the secrets signs it, and it may then speak only
 * for the numbers of that secret: the deployment's secret for every number without its own, a tenant's secret for
 * that tenant's numbers. So one business cannot sign updates in another's name.
 *
 * Account-level updates (template status, quality, tier) name a WABA, not a number: a tenant's own secret (which
 * the tenant knows: it set it) speaks for a WABA only when every tenant of that WABA is signed by it. So a tenant
 * that claims, or gets learnt with, the WABA of a business under another secret cannot sign that WABA's updates.
 * The deployment's secret is Meta's and the operator's alone: it speaks for every WABA.
 *
 * The tenant secrets are read from PostgreSQL at most every `ttlMs` and kept in memory (the webhook path makes no
 * database round trip); a change is seen by every process within that time, at once in the one that made it
 * (`invalidate`).
 */
export interface TenantAppSecret {
  phoneNumberId: string;
  wabaId: string | null;
  /** null: the tenant's webhooks are signed with the deployment's secret */
  appSecret: string | null;
}

export interface SecretScope {
  secret: string;
  /** null: the deployment's secret, valid for every number NOT in `ownNumbers` */
  numbers: Set<string> | null;
  wabaIds: Set<string> | null;
}

export interface SecretScopes {
  deployment: SecretScope;
  tenants: SecretScope[];
  /** numbers that have their own secret: the deployment's secret does not speak for them */
  ownNumbers: Set<string>;
}

export class WebhookSecrets {
  /** the scopes while fresh (one entry) */
  private readonly fresh: TtlCache<"scopes", SecretScopes>;
  /** the last good copy, served (stale) while a refresh runs or PostgreSQL is away */
  private last: SecretScopes | null = null;
  private loading: Promise<SecretScopes> | null = null;

  constructor(
    private readonly deploymentSecret: string,
    private readonly load: () => Promise<TenantAppSecret[]>,
    opts: { ttlMs?: number; clock?: Clock } = {},
  ) {
    this.fresh = new TtlCache({ ttlMs: opts.ttlMs ?? 30_000, max: 1, clock: opts.clock });
  }

  /** The scopes; a stale copy is served while a refresh runs, so only the first call of a process waits. */
  async scopes(): Promise<SecretScopes> {
    const hit = this.fresh.get("scopes");
    if (hit) return hit;
    const refresh = (this.loading ??= this.fetch().finally(() => (this.loading = null)));
    if (this.last) {
      refresh.catch(() => undefined); // keep serving the last good copy when PostgreSQL is away
      return this.last;
    }
    return refresh;
  }

  /** after a change in this process: the next webhook waits for a fresh read (one round trip) */
  invalidate(): void {
    this.fresh.clear();
    this.last = null;
  }

  private async fetch(): Promise<SecretScopes> {
    const rows = await this.load();
    const bySecret = new Map<string, SecretScope>();
    const ownNumbers = new Set<string>();
    // which secrets sign the tenants of each WABA: a secret speaks for a WABA only when it is the only one
    const wabaSecrets = new Map<string, Set<string>>();
    for (const r of rows) {
      const secret = r.appSecret ?? this.deploymentSecret;
      if (r.wabaId) wabaSecrets.set(r.wabaId, (wabaSecrets.get(r.wabaId) ?? new Set<string>()).add(secret));
    }
    for (const r of rows) {
      if (r.appSecret === null || r.appSecret === this.deploymentSecret) continue;
      ownNumbers.add(r.phoneNumberId);
      const scope = bySecret.get(r.appSecret) ?? { secret: r.appSecret, numbers: new Set<string>(), wabaIds: new Set<string>() };
      scope.numbers!.add(r.phoneNumberId);
      if (r.wabaId && wabaSecrets.get(r.wabaId)!.size === 1) scope.wabaIds!.add(r.wabaId);
      bySecret.set(r.appSecret, scope);
    }
    const scopes: SecretScopes = { deployment: { secret: this.deploymentSecret, numbers: null, wabaIds: null }, tenants: [...bySecret.values()], ownNumbers };
    this.fresh.set("scopes", scopes);
    this.last = scopes;
    return scopes;
  }
}

/** May a webhook signed within `scope` speak for this number? */
export function scopeAllows(scope: SecretScope, all: SecretScopes, phoneNumberId: string): boolean {
  return scope.numbers === null ? !all.ownNumbers.has(phoneNumberId) : scope.numbers.has(phoneNumberId);
}
