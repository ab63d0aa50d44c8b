import type { Tx } from "../db/prisma";
import type { Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import { readSettings, type TenantSettings } from "../tenants/settings";
import { hashPin, pinMatches } from "./pin-hash";
import { weakPinReason, type WeakContext } from "./pin-policy";

/**
 * Two-step verification PINs (contact_pins): a contact's own 6-digit PIN, asked after the code.
 *
 * - Only a scrypt hash is stored (./pin-hash.ts); no method returns it and nothing here logs a PIN.
 * - Wrong attempts are counted by one conditional UPDATE (… failed_attempts + 1 … RETURNING), so concurrent
 *   guesses serialise on the row and can never exceed the tenant's `pin.maxAttempts`; the attempt that reaches
 *   it locks the PIN for `pin.lockMinutes` and answers `locked`. While locked, even the right PIN answers
 *   `locked`. A right PIN (outside a lock) resets the counter; a wrong one after a lock ran out starts again at 1.
 * - Every verify derives exactly one scrypt key (against a dummy when there is no PIN), so timing does not tell
 *   "locked" from "wrong" from "not set".
 * - A forgotten PIN's waiting-period reset counts from the request (`reset_requested_at`), never from when the PIN
 *   was set: a PIN set long ago is not removed at once by whoever holds the number now (a SIM swap). A right PIN,
 *   or the owner's "that wasn't me", cancels the pending reset; setting a new PIN clears it too.
 * - `verified_at` is the last proof of the PIN (typed right, or set): account-changing actions ask for a recent one
 *   (`provenWithin`).
 * Methods take the caller's transaction client; time comes from the injected clock.
 */
export type PinSetResult = { ok: true } | { ok: false; reason: "weak"; message: string };
export type PinVerifyResult = { status: "approved" } | { status: "wrong"; attemptsLeft: number } | { status: "locked"; until: Date } | { status: "not_set" };
/** A waiting-period reset: asked now (`requested`), still running (`waiting`), or over (`due`: the PIN may be removed). */
export type PinResetRequest = { state: "requested" | "waiting"; requestedAt: Date; availableAt: Date } | { state: "due"; requestedAt: Date; availableAt: Date };

/** How long a right PIN counts as proof for an account-changing action (a number change, a recovery email…). */
export const PIN_PROOF_MINUTES = 15;

export interface PinServiceDeps {
  clock: Clock;
  logger: Logger;
}

interface CounterRow {
  failed_attempts: number;
  locked_until: Date | null;
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

export class PinService {
  constructor(private readonly deps: PinServiceDeps) {}

  /** Why `pin` is too weak (a short sentence), or null when it is acceptable. */
  isWeak(pin: string, ctx: WeakContext = {}): string | null {
    return weakPinReason(pin, ctx);
  }

  /**
   * Sets (or replaces) the contact's PIN: refuses a weak one (judged against the contact's own number), stores
   * the hash, clears failures and any lock. `recoveryEmail`: a string sets it, null clears it, undefined keeps
   * the stored one. Replacing a PIN is the caller's decision (first set-up, or after a reset).
   */
  async set(tx: Tx, input: { tenantId: string; contactId: string; pin: string; recoveryEmail?: string | null }): Promise<PinSetResult> {
    const contact = await tx.contact.findFirst({ where: { id: input.contactId, tenantId: input.tenantId }, select: { phoneE164: true, waId: true } });
    if (!contact) throw new Error(`contact ${input.contactId} not found for tenant ${input.tenantId}`);
    const phone = contact.phoneE164 ?? (contact.waId ? `+${contact.waId}` : null);
    const weak = weakPinReason(input.pin, { phoneE164: phone });
    if (weak) return { ok: false, reason: "weak", message: weak };

    const pinHash = await hashPin(input.pin);
    const existing = await tx.contactPin.findUnique({ where: { contactId: input.contactId }, select: { tenantId: true } });
    if (existing && existing.tenantId !== input.tenantId) throw new Error(`contact ${input.contactId} has a PIN under another tenant`);
    const now = this.deps.clock.now();
    await tx.contactPin.upsert({
      where: { contactId: input.contactId },
      create: { tenantId: input.tenantId, contactId: input.contactId, pinHash, failedAttempts: 0, lockedUntil: null, recoveryEmail: input.recoveryEmail ?? null, verifiedAt: now, createdAt: now, updatedAt: now },
      update: { pinHash, failedAttempts: 0, lockedUntil: null, resetRequestedAt: null, verifiedAt: now, updatedAt: now, ...(input.recoveryEmail !== undefined ? { recoveryEmail: input.recoveryEmail } : {}) },
    });
    this.deps.logger.info({ tenantId: input.tenantId, contactId: input.contactId, replaced: existing !== null }, "pin set");
    return { ok: true };
  }

  async verify(tx: Tx, input: { tenantId: string; contactId: string; pin: string }): Promise<PinVerifyResult> {
    const { tenantId, contactId } = input;
    const now = this.deps.clock.now();
    const row = await tx.contactPin.findFirst({ where: { contactId, tenantId }, select: { pinHash: true, lockedUntil: true } });
    // one derivation on every path (dummy when there is no PIN), before anything depends on the lock state
    const right = await pinMatches(input.pin, row?.pinHash ?? null);
    if (!row) return { status: "not_set" };
    if (row.lockedUntil && row.lockedUntil > now) return { status: "locked", until: row.lockedUntil };

    if (right) {
      // the owner knows the PIN: a pending waiting-period reset is cancelled
      const rows = await tx.$queryRaw<{ canceled: boolean }[]>`
        UPDATE contact_pins p SET failed_attempts = 0, locked_until = NULL, verified_at = ${now}::timestamptz, reset_requested_at = NULL
          FROM (SELECT reset_requested_at IS NOT NULL AS canceled FROM contact_pins WHERE contact_id = ${contactId}::uuid) old
         WHERE p.contact_id = ${contactId}::uuid AND p.tenant_id = ${tenantId}::uuid
           AND (p.locked_until IS NULL OR p.locked_until <= ${now}::timestamptz)
     RETURNING old.canceled`;
      if (rows.length === 1) {
        if (rows[0]!.canceled) this.deps.logger.info({ tenantId, contactId }, "pending pin reset cancelled by a right pin");
        return { status: "approved" };
      }
      return this.afterRace(tx, tenantId, contactId, now);
    }

    const pin = (await this.settings(tx, tenantId)).pin;
    const lockUntil = new Date(now.getTime() + pin.lockMinutes * MINUTE_MS);
    // an expired lock (locked_until set but past) starts a fresh count at 1
    const rows = await tx.$queryRaw<CounterRow[]>`
      UPDATE contact_pins
         SET failed_attempts = (CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_attempts + 1 END),
             locked_until = (CASE WHEN (CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_attempts + 1 END) >= ${pin.maxAttempts}::int
                                  THEN ${lockUntil}::timestamptz ELSE NULL END)
       WHERE contact_id = ${contactId}::uuid AND tenant_id = ${tenantId}::uuid
         AND (locked_until IS NULL OR locked_until <= ${now}::timestamptz)
   RETURNING failed_attempts, locked_until`;
    const r = rows[0];
    if (!r) return this.afterRace(tx, tenantId, contactId, now);
    if (r.locked_until) {
      this.deps.logger.warn({ tenantId, contactId, attempts: r.failed_attempts, lockedUntil: r.locked_until.toISOString() }, "pin locked after too many wrong attempts");
      return { status: "locked", until: r.locked_until };
    }
    return { status: "wrong", attemptsLeft: Math.max(0, pin.maxAttempts - r.failed_attempts) };
  }

  /** The conditional UPDATE matched nothing: another attempt locked it, or the PIN was removed meanwhile. */
  private async afterRace(tx: Tx, tenantId: string, contactId: string, now: Date): Promise<PinVerifyResult> {
    const row = await tx.contactPin.findFirst({ where: { contactId, tenantId }, select: { lockedUntil: true } });
    if (!row) return { status: "not_set" };
    return { status: "locked", until: row.lockedUntil && row.lockedUntil > now ? row.lockedUntil : now };
  }

  async has(tx: Tx, contactId: string): Promise<boolean> {
    return (await tx.contactPin.count({ where: { contactId } })) > 0;
  }

  /** Removes the PIN (after a reset through the recovery email or the waiting period). */
  async remove(tx: Tx, contactId: string): Promise<void> {
    const { count } = await tx.contactPin.deleteMany({ where: { contactId } });
    if (count > 0) this.deps.logger.info({ contactId }, "pin removed");
  }

  /**
   * The pending waiting-period reset, if any: when it was asked for and when it may go ahead (the request plus the
   * tenant's `pin.resetWaitDays`). Null without a PIN or without a pending request.
   */
  async pendingReset(tx: Tx, contactId: string): Promise<{ requestedAt: Date; availableAt: Date } | null> {
    const row = await tx.contactPin.findUnique({ where: { contactId }, select: { tenantId: true, resetRequestedAt: true } });
    if (!row?.resetRequestedAt) return null;
    const days = (await this.settings(tx, row.tenantId)).pin.resetWaitDays;
    return { requestedAt: row.resetRequestedAt, availableAt: new Date(row.resetRequestedAt.getTime() + days * DAY_MS) };
  }

  /**
   * A forgotten PIN's reset without the recovery email: the first request starts the wait (`requested`); a request
   * while it runs answers `waiting` (the start is not moved); once the wait is over, `due` (the caller removes the
   * PIN). Conditional writes: two requests at once start one wait. Null when there is no PIN.
   */
  async requestReset(tx: Tx, contactId: string): Promise<PinResetRequest | null> {
    const now = this.deps.clock.now();
    const started = await tx.$queryRaw<{ reset_requested_at: Date }[]>`
      UPDATE contact_pins SET reset_requested_at = ${now}::timestamptz
       WHERE contact_id = ${contactId}::uuid AND reset_requested_at IS NULL
   RETURNING reset_requested_at`;
    const pending = await this.pendingReset(tx, contactId);
    if (!pending) return null;
    if (started.length === 1) return { state: "requested", ...pending };
    return { state: pending.availableAt.getTime() <= now.getTime() ? "due" : "waiting", ...pending };
  }

  /** Cancels a pending waiting-period reset ("that wasn't me"). True when one was pending. */
  async cancelReset(tx: Tx, contactId: string): Promise<boolean> {
    const { count } = await tx.contactPin.updateMany({ where: { contactId, resetRequestedAt: { not: null } }, data: { resetRequestedAt: null } });
    return count > 0;
  }

  /**
   * Whether an account-changing action may go ahead without asking for the PIN: "no_pin" (nothing to ask), true when
   * the PIN was proven (typed right or set) in the last `minutes`, else false.
   */
  async provenWithin(tx: Tx, contactId: string, minutes = PIN_PROOF_MINUTES): Promise<boolean | "no_pin"> {
    return pinProof(tx, contactId, this.deps.clock.now(), minutes);
  }

  /** Whether the tenant asks for the PIN after a right code of this purpose (`pin.requireFor`). */
  async requiredFor(tx: Tx, tenantId: string, purpose: string): Promise<boolean> {
    return (await this.settings(tx, tenantId)).pin.requireFor.includes(purpose);
  }

  /** The recovery email, for the reset-by-email path (null when none was given). */
  async recoveryEmail(tx: Tx, contactId: string): Promise<string | null> {
    const row = await tx.contactPin.findUnique({ where: { contactId }, select: { recoveryEmail: true } });
    return row?.recoveryEmail ?? null;
  }

  private async settings(tx: Tx, tenantId: string): Promise<TenantSettings> {
    const t = await tx.tenant.findUnique({ where: { id: tenantId }, select: { settings: true } });
    if (!t) throw new Error(`tenant ${tenantId} not found`);
    return readSettings(t.settings);
  }
}

/**
 * The PIN gate of account-changing actions: "no_pin" when the contact has none, true when it was proven (typed right
 * or set) in the `minutes` before `now`, else false (the flow must ask for it first).
 */
export async function pinProof(db: Pick<Tx, "contactPin">, contactId: string, now: Date, minutes = PIN_PROOF_MINUTES): Promise<boolean | "no_pin"> {
  const row = await db.contactPin.findUnique({ where: { contactId }, select: { verifiedAt: true } });
  if (!row) return "no_pin";
  return row.verifiedAt !== null && row.verifiedAt.getTime() >= now.getTime() - minutes * MINUTE_MS;
}
