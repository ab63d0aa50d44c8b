/**
 * Meta's messaging-limit tiers (../shared/docs/cloud-api.md "Messaging limits"): the number of unique users a
 * business portfolio may reach OUTSIDE a customer-service window per moving 24 hours. Current names are
 * TIER_250 → TIER_2K → TIER_10K → TIER_100K → TIER_UNLIMITED; older ones (TIER_50, TIER_1K) still appear in
 * webhooks and in the deprecated `messaging_limit_tier` field. TIER_NOT_SET: the number has not sent yet.
 */
const KNOWN: Record<string, number | null> = {
  TIER_50: 50,
  TIER_250: 250,
  TIER_1K: 1_000,
  TIER_2K: 2_000,
  TIER_10K: 10_000,
  TIER_100K: 100_000,
  TIER_UNLIMITED: null,
};

/** A tier word as Meta writes it (upper case, `TIER_…`), or null when the value is not one. */
export function normalizeTier(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const t = value.trim().toUpperCase();
  return /^TIER_[A-Z0-9_]{1,30}$/.test(t) ? t : null;
}

/**
 * The number of unique users a tier allows: a number, `null` for TIER_UNLIMITED, `undefined` when the tier is
 * unknown (TIER_NOT_SET, a name Meta may add). A future `TIER_<n>` / `TIER_<n>K` / `TIER_<n>M` is read by its name.
 */
export function limitOfTier(tier: string | null | undefined): number | null | undefined {
  if (!tier) return undefined;
  if (tier in KNOWN) return KNOWN[tier];
  const m = /^TIER_(\d{1,9})(K|M)?$/.exec(tier);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === "K" ? 1_000 : m[2] === "M" ? 1_000_000 : 1);
}

/** The tier a Graph answer for `?fields=whatsapp_business_manager_messaging_limit` carries (tolerant of shapes). */
export function tierFromGraph(data: unknown): string | null {
  if (!data || typeof data !== "object") return null;
  const d = data as Record<string, unknown>;
  const v = d.whatsapp_business_manager_messaging_limit;
  const direct = normalizeTier(v);
  if (direct) return direct;
  if (v && typeof v === "object") {
    // tolerate an object form ({ "max_daily_conversations_per_business": "TIER_2K" } or { "tier": … })
    for (const k of ["max_daily_conversations_per_business", "current_limit", "tier", "value", "limit"]) {
      const t = normalizeTier((v as Record<string, unknown>)[k]);
      if (t) return t;
    }
  }
  // the deprecated field, if Meta (or a proxy) answers with it
  return normalizeTier(d.messaging_limit_tier);
}

/**
 * The messaging-limit tier a `phone_number_quality_update` webhook value announces, or null when it announces
 * none (a quality flag, or a throughput change). Meta's reference: `max_daily_conversations_per_business` (the
 * portfolio's limit) replaces `current_limit` (removed in 2026, and which also carried throughput levels:
 * with event THROUGHPUT_UPGRADE its TIER_UNLIMITED is a throughput, not a messaging limit).
 */
export function tierFromQualityUpdate(value: Record<string, unknown>): string | null {
  const perBusiness = normalizeTier(value.max_daily_conversations_per_business);
  const candidate = perBusiness ?? (String(value.event ?? "").toUpperCase().includes("THROUGHPUT") ? null : normalizeTier(value.current_limit));
  if (!candidate || candidate === "TIER_NOT_SET") return null;
  return candidate;
}
