import { randomBytes } from "node:crypto";
import { transaction, type PrismaClient, type Prisma, type Tx } from "../db/prisma";
import type { Keyring } from "../shared/crypto";
import { checkTargetUrl } from "../shared/safe-http";
import { eventSettingsSchema, readSettings } from "../tenants/settings";

/**
 * A tenant's callback: the URL events are POSTed to and the secret they are signed with (settings.events).
 * The secret is 32 random bytes (`whsec_<base64url>`), stored encrypted (Keyring "tenant-token"), generated when
 * a URL is first set and shown once: `setCallback` returns it only when it made it, `rotateSecret` returns the new
 * one. Removing the URL stops events but keeps the secret, so setting a URL again keeps the business's secret.
 */
export type CallbackUrlCheck = { ok: true; url: string } | { ok: false; reason: string };

/**
 * The rule of src/shared/safe-http.ts, at set time (the delivery worker applies it again at connect time, on the
 * resolved address): https only, no IP literal of a non-public address (loopback, private, link-local and metadata,
 * CGNAT, unique-local…, in any spelling), no credentials; the fragment is dropped. In development mode only
 * (`dev`, NODE_ENV=development) also plain http to 127.0.0.1, localhost and [::1].
 */
export function validateCallbackUrl(raw: string, opts: { dev: boolean } = { dev: false }): CallbackUrlCheck {
  const check = checkTargetUrl(raw, { dev: opts.dev === true }, "the callback URL");
  return check.ok ? { ok: true, url: check.url.toString() } : check;
}

export class InvalidCallbackUrlError extends Error {
  override readonly name = "InvalidCallbackUrlError";
  readonly code = "invalid_callback_url";
  constructor(reason: string) {
    super(reason);
  }
}

export function generateCallbackSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

export interface CallbackInfo {
  url: string | null;
  hasSecret: boolean;
}

/** What the admin API shows: the URL and whether a secret exists (never the secret). */
export async function getCallback(prisma: PrismaClient | Tx, tenantId: string): Promise<CallbackInfo> {
  const row = await prisma.tenant.findUnique({ where: { id: tenantId }, select: { settings: true } });
  if (!row) throw new Error(`tenant ${tenantId} not found`);
  const events = readSettings(row.settings).events;
  return { url: events.url ?? null, hasSecret: Boolean(events.secretEnc) };
}

/**
 * Sets (or with null removes) the callback URL. Returns the secret only when it was generated now (first set);
 * otherwise `secret` is null. Throws InvalidCallbackUrlError for a URL `validateCallbackUrl` refuses (`opts.dev`:
 * development mode, see there).
 */
export async function setCallback(
  prisma: PrismaClient,
  keyring: Keyring,
  tenantId: string,
  url: string | null,
  opts: { dev: boolean } = { dev: false },
): Promise<{ url: string | null; secret: string | null }> {
  let normalized: string | undefined;
  if (url !== null) {
    const check = validateCallbackUrl(url, opts);
    if (!check.ok) throw new InvalidCallbackUrlError(check.reason);
    normalized = check.url;
  }
  return updateEvents(prisma, tenantId, (current) => {
    if (normalized === undefined || current.secretEnc) return { next: { ...current, url: normalized }, secret: null };
    const secret = generateCallbackSecret();
    return { next: { url: normalized, secretEnc: keyring.encrypt("tenant-token", secret) }, secret };
  }).then(({ events, secret }) => ({ url: events.url ?? null, secret }));
}

/** Replaces the signing secret at once and returns the new one (shown once). Events still pending are signed with it. */
export async function rotateSecret(prisma: PrismaClient, keyring: Keyring, tenantId: string): Promise<{ secret: string }> {
  const secret = generateCallbackSecret();
  await updateEvents(prisma, tenantId, (current) => ({ next: { ...current, secretEnc: keyring.encrypt("tenant-token", secret) }, secret }));
  return { secret };
}

/** The decrypted secret, for the delivery worker; null when none was set. */
export function callbackSecret(keyring: Keyring, settings: unknown): string | null {
  const enc = readSettings(settings).events.secretEnc;
  return enc ? keyring.decryptString("tenant-token", enc) : null;
}

type EventSettings = ReturnType<typeof readSettings>["events"];

/** Read-modify-write of settings.events under a row lock, leaving the other settings as stored. */
async function updateEvents<S>(
  prisma: PrismaClient,
  tenantId: string,
  change: (current: EventSettings) => { next: EventSettings; secret: S },
): Promise<{ events: EventSettings; secret: S }> {
  return transaction(prisma, async (tx) => {
    const locked = await tx.$queryRaw<Array<{ settings: unknown }>>`SELECT settings FROM tenants WHERE id = ${tenantId}::uuid FOR UPDATE`;
    const row = locked[0];
    if (!row) throw new Error(`tenant ${tenantId} not found`);
    const raw = row.settings && typeof row.settings === "object" && !Array.isArray(row.settings) ? (row.settings as Record<string, unknown>) : {};
    const { next, secret } = change(readSettings(raw).events);
    const events = eventSettingsSchema.parse(stripUndefined(next));
    await tx.tenant.update({ where: { id: tenantId }, data: { settings: { ...raw, events } as Prisma.InputJsonValue } });
    return { events, secret };
  });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
