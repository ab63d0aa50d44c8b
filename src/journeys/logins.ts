import type { PrismaClient, Tx } from "../db/prisma";

/**
 * Logins (web sessions, devices, connected services) a business reports for a contact, so the customer can see
 * and end them from the chat ("log out of all devices" after a compromise). Shared by the `list_logins` /
 * `revoke_logins` / `revoke_login` actions and the business's /v1/contacts/{phone}/logins API.
 */
export interface LoginView {
  /** the business's own id of the login */
  id: string;
  device: string | null;
  location: string | null;
  /** when the login happened (as reported) */
  at: string;
  revokedAt: string | null;
}

type Db = Tx | PrismaClient;
type LoginRow = { externalId: string; device: string | null; location: string | null; createdAt: Date; revokedAt: Date | null };

export function loginView(l: LoginRow): LoginView {
  return { id: l.externalId, device: l.device, location: l.location, at: l.createdAt.toISOString(), revokedAt: l.revokedAt ? l.revokedAt.toISOString() : null };
}

/** The contact's logins not revoked, newest first (at most `take`). */
export async function activeLogins(db: Db, tenantId: string, contactId: string, take = 100): Promise<LoginRow[]> {
  return db.login.findMany({
    where: { tenantId, contactId, revokedAt: null },
    orderBy: { createdAt: "desc" },
    take,
    select: { externalId: true, device: true, location: true, createdAt: true, revokedAt: true },
  });
}

/**
 * Revokes the contact's active logins (all, or the one with `externalId`), conditionally: a login revoked twice
 * counts once. Returns the business ids of the logins this call revoked.
 */
export async function revokeLogins(tx: Db, input: { tenantId: string; contactId: string; externalId?: string; by: string; now: Date }): Promise<string[]> {
  const rows = await tx.login.updateManyAndReturn({
    where: { tenantId: input.tenantId, contactId: input.contactId, revokedAt: null, ...(input.externalId !== undefined ? { externalId: input.externalId } : {}) },
    data: { revokedAt: input.now, revokedBy: input.by.slice(0, 200) },
    select: { externalId: true },
  });
  return rows.map((r) => r.externalId);
}

const TEXTS = {
  en: { none: "No active logins.", unknownDevice: "Unknown device", more: (n: number) => `…and ${n} more` },
  es: { none: "No hay sesiones activas.", unknownDevice: "Dispositivo desconocido", more: (n: number) => `…y ${n} más` },
  pt: { none: "Nenhuma sessão ativa.", unknownDevice: "Dispositivo desconhecido", more: (n: number) => `…e mais ${n}` },
} as const;

function lang(locale: string): keyof typeof TEXTS {
  const l = locale.slice(0, 2).toLowerCase();
  return l === "es" || l === "pt" ? l : "en";
}

/** "3 hours ago", "ayer", "há 2 dias": relative to now, in the locale's words. */
export function ago(at: Date, now: Date, locale: string): string {
  const tag = locale.replace("_", "-");
  let fmt: Intl.RelativeTimeFormat;
  try {
    fmt = new Intl.RelativeTimeFormat(tag, { numeric: "auto" });
  } catch {
    fmt = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  }
  const s = Math.round((at.getTime() - now.getTime()) / 1000);
  const a = Math.abs(s);
  if (a < 60) return fmt.format(0, "second");
  if (a < 3600) return fmt.format(Math.round(s / 60), "minute");
  if (a < 86_400) return fmt.format(Math.round(s / 3600), "hour");
  if (a < 30 * 86_400) return fmt.format(Math.round(s / 86_400), "day");
  try {
    return new Intl.DateTimeFormat(tag, { dateStyle: "medium", timeZone: "UTC" }).format(at);
  } catch {
    return at.toISOString().slice(0, 10);
  }
}

/** A short list for the chat, one login a line: "• Chrome on Windows · Lisbon · 2 hours ago". */
export function loginsText(logins: Array<Pick<LoginRow, "device" | "location" | "createdAt">>, locale: string, now: Date, max = 10): string {
  const t = TEXTS[lang(locale)];
  if (logins.length === 0) return t.none;
  const clean = (s: string | null) => (s ?? "").replace(/\s+/g, " ").trim().slice(0, 60);
  const lines = logins.slice(0, max).map((l, i) => {
    const parts = [clean(l.device) || t.unknownDevice, clean(l.location), ago(l.createdAt, now, locale)].filter(Boolean);
    return `${i + 1}. ${parts.join(" · ")}`;
  });
  if (logins.length > max) lines.push(t.more(logins.length - max));
  return lines.join("\n");
}
