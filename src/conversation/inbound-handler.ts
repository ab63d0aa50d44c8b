import { createHash, randomUUID } from "node:crypto";
import { transaction, type PrismaClient, type Tx } from "../db/prisma";
import { prismaLocks, prismaQueryable, sqlFor, type Queryable, type Sql } from "../db/sql";
import { sentAtOf, type InboundItem } from "../ingest/envelope";
import { Outbox } from "../messaging/outbox";
import { maskPhone, type Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import type { TenantDirectory } from "../tenants/tenant-directory";
import type { ContactRow } from "./contacts";
import type { Router, SessionState } from "./router";
import { storedInbound } from "./stored-message";

export type HandleOutcome =
  | { kind: "handled"; outbound: string[]; handler: string | null; afterCommit?: () => Promise<void> }
  | { kind: "duplicate" }
  | { kind: "unknown_tenant" };

export class SessionConflictError extends Error {
  constructor() {
    super("session was changed by another writer");
  }
}

/** A signed 64-bit advisory-lock key for one contact of one business number. */
export function contactLockKey(phoneNumberId: string, contactKey: string): bigint {
  return createHash("sha256").update(`${phoneNumberId}\u0000${contactKey}`).digest().readBigInt64BE(0);
}

/**
 * Handles one inbound message in one transaction: lock the contact (so two workers or processes never interleave
 * its messages), claim the wamid (the lasting dedupe gate), route, write replies to the outbox and save the
 * session. Replies are dispatched to the outbound queue after commit.
 */
export class InboundHandler {
  private readonly sql: Sql;

  constructor(
    private readonly deps: { prisma: PrismaClient; tenants: TenantDirectory; router: Router; outbox: Outbox; clock: Clock; logger: Logger; sql?: Sql },
  ) {
    this.sql = deps.sql ?? sqlFor(deps.prisma);
  }

  /** `opts.retry`: this message's job ran before (failed or crashed), so its replies may not have been dispatched. */
  async handle(item: InboundItem, opts: { retry?: boolean } = {}): Promise<HandleOutcome> {
    const { prisma, tenants, router, outbox, clock, logger } = this.deps;
    const tenant = await tenants.byPhoneNumberId(item.phoneNumberId);
    if (tenant && item.wabaId) await tenants.noteWabaId(tenant, item.wabaId);
    if (!tenant) {
      logger.warn({ phoneNumberId: item.phoneNumberId, wamid: item.message.id }, "message for an unknown business number dropped");
      return { kind: "unknown_tenant" };
    }
    const lock = { lockKey: contactLockKey(item.phoneNumberId, item.contactKey) };

    // an implausible timestamp falls back to the receive time (it must never fail the job: later messages wait on it)
    const sentAt = sentAtOf(item.message.timestamp, item.receivedAt);
    /** set once a brand-new contact was committed on its own (below): the message is that contact's first */
    let committedNew = false;

    const body = async (q: Queryable, tx: Tx): Promise<HandleOutcome> => {
      const now = clock.now();
      const claim = await claimInbound(q, tenant.id, item, sentAt, now);
      if (!claim.claimed) return { kind: "duplicate" };
      const { contact, created, session } = claim;
      // A contact this transaction just inserted is invisible to every other connection until it commits, and a
      // handler's effect that runs on its own (a flow's code request, a PIN, an action) would wait on that row until
      // the statement timeout. So a new contact is committed first, on its own, and the message handled after it.
      if (created) throw new NewContactPending();

      const result = await router.route({ tx, tenant, contact, isNewContact: committedNew, message: item.message, session, now });
      if (result.session) await saveSession(q, session, result.session);
      if (result.redactInbound) {
        // the clear text never commits: the row was inserted in this same transaction
        await q.execute(REDACT_INBOUND, [tenant.id, item.message.id, JSON.stringify(redactPayload(item.message)), new Date()]);
      }
      // the last statement of the transaction: COMMIT goes with it
      const outbound = await Outbox.insert(q, { tenantId: tenant.id, contactId: contact.id, contents: result.replies, now }, { commit: true });
      return { kind: "handled", outbound, handler: result.handler, afterCommit: result.afterCommit };
    };

    // Plain SQL unless a handler may need the Prisma transaction for this message (codes, "not me", custom handlers).
    const once = () =>
      router.usesTx(item.message)
        ? transaction(prisma, async (tx) => {
            await prismaLocks(tx, lock);
            return body(prismaQueryable(tx), tx);
          })
        : this.sql.transaction((q) => body(q, NO_PRISMA_TX), lock);
    let outcome: HandleOutcome;
    try {
      outcome = await once();
    } catch (err) {
      if (!(err instanceof NewContactPending)) throw err;
      // the first message of a new contact: the contact alone, committed (idempotent), then the message as usual
      committedNew = await this.sql.transaction((q) => insertContact(q, tenant.id, item, sentAt), lock);
      outcome = await once();
    }

    if (outcome.kind === "handled") {
      await outbox.dispatch(outcome.outbound, { requestId: item.requestId }); // the webhook's request id, for tracing
      await outcome.afterCommit?.();
      if (logger.isLevelEnabled("debug")) {
        logger.debug({ wamid: item.message.id, from: maskPhone(item.contactKey), handler: outcome.handler, replies: outcome.outbound.length }, "message handled");
      }
    } else if (outcome.kind === "duplicate") {
      logger.info({ wamid: item.message.id }, "redelivered message ignored");
      // a retry after the commit: the replies' jobs may never have been written (dispatch failed): write them now
      if (opts.retry) {
        const n = await outbox.redispatchQueuedAfter(tenant.id, item.message.id, { requestId: item.requestId });
        if (n > 0) logger.warn({ wamid: item.message.id, replies: n }, "replies of an already handled message dispatched again");
      }
    }
    return outcome;
  }
}

/** Thrown inside the message's transaction (rolling it back) when it would have created the contact. */
class NewContactPending extends Error {
  constructor() {
    super("a new contact is committed before its first message is handled");
  }
}

/** The contact of a first message, on its own (after the contact lock); true when this call inserted it. */
async function insertContact(q: Queryable, tenantId: string, item: InboundItem, at: Date): Promise<boolean> {
  const waId = item.message.from ?? item.contact?.wa_id ?? null;
  const userId = item.message.from_user_id ?? item.contact?.user_id ?? null;
  const rows = await q.query<{ id: string }>(INSERT_CONTACT, [
    tenantId, userId, waId, waId ? `+${waId}` : null, item.contact?.profile?.name ?? null, item.contact?.profile?.username ?? null, at, new Date(), randomUUID(),
  ]);
  return rows.length === 1;
}

const INSERT_CONTACT = {
  name: "inbound_contact_insert",
  text: `INSERT INTO contacts (id, tenant_id, wa_id, user_id, phone_e164, profile_name, username, last_inbound_at, updated_at)
  SELECT $9::uuid, $1::uuid, $3::text, $2::text, $4::text, $5::text, $6::text, $7::timestamptz, $8::timestamptz
   WHERE NOT EXISTS (SELECT 1 FROM contacts WHERE tenant_id = $1::uuid AND (user_id = $2::text OR wa_id = $3::text))
  ON CONFLICT DO NOTHING
  RETURNING id`,
};

/**
 * What handlers get as `ctx.tx` on the plain SQL path (a message no handler asked a Prisma transaction for, a flow
 * call's answer): a handler there must not use it.
 */
export const NO_PRISMA_TX = new Proxy({} as Tx, {
  get(_target, prop) {
    throw new Error(`ctx.tx.${String(prop)} used on the plain SQL path (no Prisma transaction: usesTx() returned false)`);
  },
});

const REDACT_INBOUND = {
  name: "inbound_redact",
  text: `UPDATE messages SET payload = $3::jsonb, updated_at = $4::timestamptz WHERE tenant_id = $1::uuid AND wamid = $2::text`,
};

/**
 * One statement: find or create the contact (by BSUID and/or wa_id, oldest first, missing keys filled in),
 * claim the wamid (the inbound row; nothing if it exists) and, if claimed, load or create the contact's session.
 */
const CLAIM_INBOUND = {
  name: "inbound_claim",
  text: `WITH existing AS (
  SELECT id FROM contacts
   WHERE tenant_id = $1::uuid AND (user_id = $2::text OR wa_id = $3::text)
   ORDER BY created_at ASC LIMIT 1
), upd AS (
  UPDATE contacts c SET
    wa_id = COALESCE(c.wa_id, $3::text),
    user_id = COALESCE(c.user_id, $2::text),
    phone_e164 = COALESCE(c.phone_e164, $4::text),
    profile_name = COALESCE($5::text, c.profile_name),
    username = COALESCE($6::text, c.username),
    last_inbound_at = GREATEST(c.last_inbound_at, $7::timestamptz),
    updated_at = $8::timestamptz
  FROM existing e WHERE c.id = e.id
  RETURNING c.id, c.wa_id, c.user_id, c.phone_e164, c.profile_name, c.locale, c.last_inbound_at, c.reverify_required_at, c.verified_at, false AS created
), ins AS (
  INSERT INTO contacts (id, tenant_id, wa_id, user_id, phone_e164, profile_name, username, last_inbound_at, updated_at)
  SELECT $9::uuid, $1::uuid, $3::text, $2::text, $4::text, $5::text, $6::text, $7::timestamptz, $8::timestamptz
   WHERE NOT EXISTS (SELECT 1 FROM existing)
  RETURNING id, wa_id, user_id, phone_e164, profile_name, locale, last_inbound_at, reverify_required_at, verified_at, true AS created
), contact AS (
  SELECT * FROM upd UNION ALL SELECT * FROM ins
), claim AS (
  INSERT INTO messages (id, tenant_id, contact_id, direction, wamid, type, payload, status, timestamp, updated_at)
  SELECT $10::uuid, $1::uuid, contact.id, 'inbound'::"Direction", $11::text, $12::text, $13::jsonb, 'received'::"MessageStatus", $7::timestamptz, $8::timestamptz
    FROM contact
  ON CONFLICT DO NOTHING
  RETURNING id
), old_session AS (
  SELECT s.id, s.flow, s.flow_version, s.step, s.variables, s.state, s.expires_at, s.handoff_at, s.version
    FROM sessions s JOIN contact ON s.contact_id = contact.id
), new_session AS (
  INSERT INTO sessions (id, tenant_id, contact_id, updated_at)
  SELECT $14::uuid, $1::uuid, contact.id, $8::timestamptz FROM contact
   WHERE EXISTS (SELECT 1 FROM claim) AND NOT EXISTS (SELECT 1 FROM old_session)
  ON CONFLICT (contact_id) DO NOTHING
  RETURNING id, flow, flow_version, step, variables, state, expires_at, handoff_at, version
), session AS (
  SELECT * FROM old_session UNION ALL SELECT * FROM new_session
)
SELECT contact.id::text AS id, contact.wa_id, contact.user_id, contact.phone_e164, contact.profile_name, contact.locale,
       contact.last_inbound_at, contact.reverify_required_at, contact.verified_at, contact.created, EXISTS (SELECT 1 FROM claim) AS claimed,
       session.id::text AS s_id, session.flow AS s_flow, session.flow_version AS s_flow_version, session.step AS s_step,
       session.variables AS s_variables, session.state AS s_state, session.expires_at AS s_expires_at,
       session.handoff_at AS s_handoff_at, session.version AS s_version,
       -- the re-verify rule of flows (flow.handler.ts): a code of this number locked by wrong guesses in the last
       -- day, after the contact last verified (here, so the rule costs no round trip of its own)
       EXISTS (SELECT 1 FROM verifications v
                WHERE v.tenant_id = $1::uuid AND v."to" = contact.phone_e164 AND v.status = 'max_attempts_reached'
                  AND v.ended_at > GREATEST($15::timestamptz - interval '24 hours', contact.verified_at)) AS locked_since_verified
  FROM contact LEFT JOIN session ON true`,
};

const LOAD_SESSION = {
  name: "inbound_session",
  text: `SELECT id::text AS s_id, flow AS s_flow, flow_version AS s_flow_version, step AS s_step, variables AS s_variables,
       state AS s_state, expires_at AS s_expires_at, handoff_at AS s_handoff_at, version AS s_version
       FROM sessions WHERE contact_id = $1::uuid`,
};

export interface SessionColumns {
  s_id: string | null;
  s_flow: string | null;
  s_flow_version: number | null;
  s_step: string | null;
  s_variables: unknown;
  s_state: unknown;
  s_expires_at: Date | null;
  s_handoff_at: Date | null;
  s_version: number | null;
}

/** A contact's columns as the handling statements select them. */
export interface ContactColumns {
  id: string;
  wa_id: string | null;
  user_id: string | null;
  phone_e164: string | null;
  profile_name: string | null;
  locale: string | null;
  last_inbound_at: Date | null;
  reverify_required_at: Date | null;
  verified_at: Date | null;
  locked_since_verified?: boolean;
}

export function contactOfRow(row: ContactColumns): ContactRow {
  return {
    id: row.id,
    waId: row.wa_id,
    userId: row.user_id,
    phoneE164: row.phone_e164,
    profileName: row.profile_name,
    locale: row.locale,
    reverifyRequiredAt: row.reverify_required_at,
    verifiedAt: row.verified_at,
    lastInboundAt: row.last_inbound_at,
    ...(row.locked_since_verified !== undefined ? { lockedSinceVerified: row.locked_since_verified } : {}),
  };
}

export function sessionOfRow(s: SessionColumns & { s_id: string }): SessionState {
  return {
    id: s.s_id,
    flow: s.s_flow,
    flowVersion: s.s_flow_version,
    step: s.s_step,
    variables: (s.s_variables ?? {}) as Record<string, unknown>,
    state: (s.s_state ?? {}) as Record<string, unknown>,
    expiresAt: s.s_expires_at,
    handoffAt: s.s_handoff_at,
    version: s.s_version ?? 0,
  };
}

type ClaimRow = SessionColumns & ContactColumns & { created: boolean; claimed: boolean; locked_since_verified: boolean };

type Claim = { claimed: false } | { claimed: true; contact: ContactRow; created: boolean; session: SessionState };

/** Inside the caller's transaction, after the contact lock: contact upsert + wamid claim + session, one round trip. */
async function claimInbound(q: Queryable, tenantId: string, item: InboundItem, at: Date, now: Date): Promise<Claim> {
  const waId = item.message.from ?? item.contact?.wa_id ?? null;
  const userId = item.message.from_user_id ?? item.contact?.user_id ?? null;
  const [row] = await q.query<ClaimRow>(CLAIM_INBOUND, [
    tenantId,
    userId,
    waId,
    waId ? `+${waId}` : null,
    item.contact?.profile?.name ?? null,
    item.contact?.profile?.username ?? null,
    at,
    new Date(),
    randomUUID(),
    randomUUID(),
    item.message.id,
    item.message.type,
    JSON.stringify(storedInbound(item.message)), // what looks like a code is never stored (stored-message.ts)
    randomUUID(),
    now,
  ]);
  if (!row) throw new Error("contact upsert returned no row");
  if (!row.claimed) return { claimed: false };
  let s: SessionColumns = row;
  if (s.s_id === null) {
    // a session created concurrently (ON CONFLICT DO NOTHING): it is visible to the next statement
    const [again] = await q.query<SessionColumns>(LOAD_SESSION, [row.id]);
    if (!again) throw new Error("session could not be created");
    s = again;
  }
  return { claimed: true, created: row.created, contact: contactOfRow(row), session: sessionOfRow({ ...s, s_id: s.s_id! }) };
}

/** Optimistic lock: the update applies only if nobody saved the session since it was read. */
export async function saveSession(q: Queryable, before: SessionState, change: NonNullable<import("./router").RouteResult["session"]>): Promise<void> {
  const values: unknown[] = [before.id, before.version, new Date()];
  const sets = ["version = version + 1", "updated_at = $3::timestamptz"];
  const set = (column: string, value: unknown, cast: string) => {
    values.push(value);
    sets.push(`${column} = $${values.length}::${cast}`);
  };
  if (change.flow !== undefined) set("flow", change.flow, "text");
  if (change.flowVersion !== undefined) set("flow_version", change.flowVersion, "int");
  if (change.step !== undefined) set("step", change.step, "text");
  if (change.variables !== undefined) set("variables", JSON.stringify(change.variables), "jsonb");
  if (change.expiresAt !== undefined) set("expires_at", change.expiresAt, "timestamptz");
  if (change.state !== undefined) set("state", JSON.stringify(change.state), "jsonb");
  if (change.handoffAt !== undefined) set("handoff_at", change.handoffAt, "timestamptz");
  const count = await q.execute(`UPDATE sessions SET ${sets.join(", ")} WHERE id = $1::uuid AND version = $2::int`, values);
  if (count === 0) throw new SessionConflictError();
}

/** The stored form of a message that carried a secret: its text replaced, everything else kept. */
export function redactPayload(message: InboundItem["message"]): Record<string, unknown> {
  const copy = { ...(message as Record<string, unknown>) };
  if (copy.text && typeof copy.text === "object") copy.text = { ...(copy.text as object), body: "[redacted]" };
  copy.redacted = true;
  return copy;
}
