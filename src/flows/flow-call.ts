import type { Queue } from "bullmq";
import type { PrismaClient } from "../db/prisma";
import type { Queryable, Sql } from "../db/sql";
import { contactOfRow, NO_PRISMA_TX, saveSession, sessionOfRow, type ContactColumns, type SessionColumns } from "../conversation/inbound-handler";
import { callbackSecret } from "../events/callback";
import { Outbox } from "../messaging/outbox";
import type { Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import type { Keyring } from "../shared/crypto";
import { SecretInDataError } from "../shared/no-secrets";
import { readSettings } from "../tenants/settings";
import type { TenantDirectory } from "../tenants/tenant-directory";
import { jobIds, jobOptions, type EncryptedJob } from "../queues/jobs";
import type { EffectResult } from "./engine";
import type { FlowHandler } from "./flow.handler";
import { callBusinessEndpoint, type HttpCallResult } from "./http-call";

/**
 * A flow's `http` step as a continuation (docs/architecture.md, "Outside calls"). When the engine reaches an http
 * step, the message's transaction commits with the session waiting for the step's result (`wait: {kind: "result"}`
 * and `state.call = {id, step}`), and one job goes to the `flow-calls` queue. Its worker calls the business outside
 * any transaction (no pool connection, no contact lock held while the endpoint thinks), then feeds the answer back
 * to the engine in a transaction of its own under the contact's advisory lock (the lock every message of the
 * contact is handled under), only if the session still waits for that very call: a result for a session that moved
 * on (cancelled, timed out, restarted, a newer execution of the step) is dropped.
 *
 * `id` is the step execution's `Idempotency-Key`: made when the step is reached, the same on every retry of the
 * call (in the job, across job retries and crashes), different for the next execution of the step.
 */
export interface FlowCall {
  /** the Idempotency-Key (a random UUID per step execution) */
  id: string;
  tenantId: string;
  phoneNumberId: string;
  contactId: string;
  sessionId: string;
  /** the contact's advisory-lock key (contactLockKey), as a decimal string */
  lockKey: string;
  flow: string;
  step: string;
  url: string;
  method: "GET" | "POST";
  timeoutMs: number;
  /** more attempts after a timeout, a network error, 429 or 5xx (the step's `retries`) */
  retries: number;
  body: { contact: Record<string, unknown>; variables: Record<string, unknown> };
  /** set once the call has answered: a retried job resumes the flow without calling again */
  result?: Extract<EffectResult, { type: "http" }>;
}

/**
 * The session's note of the call it waits for (session.state.call), with the job itself: committed with the
 * session, so the contact's next message can write the job again if Redis refused it after the commit (the same
 * job id: a no-op while the job exists).
 */
export interface PendingCall {
  id: string;
  step: string;
  job?: FlowCall;
}

export function pendingCallOf(state: Record<string, unknown> | null | undefined): PendingCall | null {
  const c = state?.call as Partial<PendingCall> | undefined;
  if (!c || typeof c.id !== "string" || typeof c.step !== "string") return null;
  return { id: c.id, step: c.step, ...(c.job && typeof c.job === "object" && c.job.id === c.id ? { job: c.job } : {}) };
}

/** The producer side: the job carries the contact's phone, name and the flow's variables, so it is encrypted. */
export class FlowCalls {
  constructor(
    private readonly queue: Queue<EncryptedJob>,
    private readonly keyring: Keyring,
  ) {}

  async enqueue(call: FlowCall): Promise<void> {
    // one job per step execution: enqueuing the same call twice is a no-op
    await this.queue.add("call", { enc: this.encrypt(call) }, { ...jobOptions.flowCalls, jobId: jobIds.flowCall(call.id) });
  }

  encrypt(call: FlowCall): string {
    return this.keyring.encrypt("job-data", JSON.stringify(call));
  }

  decrypt(job: EncryptedJob): FlowCall {
    return JSON.parse(this.keyring.decryptString("job-data", job.enc)) as FlowCall;
  }
}

/** An answer worth asking again for (the same Idempotency-Key): the endpoint may not have acted on it. */
export function retryable(r: HttpCallResult): boolean {
  if (r.ok) return false;
  if (r.error === "timeout" || r.error === "network_error") return true;
  return r.error === "http_error" && r.status !== undefined && (r.status === 429 || r.status >= 500);
}

export interface FlowCallDeps {
  prisma: PrismaClient;
  sql: Sql;
  keyring: Keyring;
  tenants: TenantDirectory;
  outbox: Outbox;
  clock: Clock;
  logger: Logger;
  flowHandler: FlowHandler;
  /** development mode: loopback http endpoints allowed (http-call.ts) */
  dev?: boolean;
  /** the pause before retry n (0-based) of a call; default 500 ms · 2^n */
  retryDelayMs?: (n: number) => number;
}

/** Whether the session still waits for this call (read outside any transaction, to skip a call nobody waits for). */
export async function stillWaiting(sql: Queryable, call: FlowCall): Promise<boolean> {
  const rows = await sql.query<{ id: string | null }>(STILL_WAITING, [call.sessionId]);
  return rows[0]?.id === call.id;
}

const STILL_WAITING = {
  name: "flow_call_waiting",
  text: `SELECT state->'call'->>'id' AS id FROM sessions WHERE id = $1::uuid`,
};

/** The call itself, outside any transaction, with the step's retries; every attempt carries the same key. */
export async function performCall(deps: FlowCallDeps, call: FlowCall): Promise<Extract<EffectResult, { type: "http" }>> {
  const tenant = await deps.tenants.byPhoneNumberId(call.phoneNumberId);
  if (!tenant || tenant.id !== call.tenantId) return { type: "http", ok: false, error: "network_error" };
  const settings = readSettings(tenant.settings);
  const secret = callbackSecret(deps.keyring, tenant.settings);
  if (!secret) return { type: "http", ok: false, error: "no_signing_secret" };
  let r: HttpCallResult = { ok: false, error: "network_error" };
  for (let attempt = 0; attempt <= call.retries; attempt++) {
    if (attempt > 0) await new Promise((res) => setTimeout(res, (deps.retryDelayMs ?? ((n) => 500 * 2 ** n))(attempt - 1)));
    try {
      r = await callBusinessEndpoint({
        url: call.url,
        method: call.method,
        body: call.body,
        timeoutMs: call.timeoutMs,
        allowedHosts: settings.flows.httpAllowedHosts,
        secret,
        flow: call.flow,
        step: call.step,
        tenantId: call.tenantId,
        now: deps.clock.now(), // signed at each attempt: the business checks the timestamp's freshness
        idempotencyKey: call.id,
        dev: deps.dev === true,
      });
    } catch (err) {
      if (err instanceof SecretInDataError) return { type: "http", ok: false, error: "secret_in_variables" };
      throw err;
    }
    if (!retryable(r)) break;
  }
  return r.ok ? { type: "http", ok: true, data: r.data } : { type: "http", ok: false, error: r.error };
}

const LOAD = {
  name: "flow_call_load",
  text: `SELECT c.id::text AS id, c.wa_id, c.user_id, c.phone_e164, c.profile_name, c.locale, c.last_inbound_at, c.reverify_required_at, c.verified_at,
       s.id::text AS s_id, s.flow AS s_flow, s.flow_version AS s_flow_version, s.step AS s_step, s.variables AS s_variables, s.state AS s_state,
       s.expires_at AS s_expires_at, s.handoff_at AS s_handoff_at, s.version AS s_version
  FROM sessions s JOIN contacts c ON c.id = s.contact_id
 WHERE s.id = $1::uuid AND s.tenant_id = $2::uuid AND c.id = $3::uuid`,
};

type LoadRow = ContactColumns & SessionColumns & { s_id: string };

/**
 * The call's answer as the engine's input, like a message of the contact: under its advisory lock, in one
 * transaction (session, replies, commit), replies dispatched after commit. "stale": the session no longer waits
 * for this call, nothing was changed.
 */
export async function resumeFlowCall(deps: FlowCallDeps, call: FlowCall, result: Extract<EffectResult, { type: "http" }>): Promise<"resumed" | "stale"> {
  const tenant = await deps.tenants.byPhoneNumberId(call.phoneNumberId);
  if (!tenant || tenant.id !== call.tenantId) return "stale";
  const outcome = await deps.sql.transaction(
    async (q) => {
      const now = deps.clock.now();
      const [row] = await q.query<LoadRow>(LOAD, [call.sessionId, call.tenantId, call.contactId]);
      if (!row) return null;
      const contact = contactOfRow(row);
      const session = sessionOfRow(row);
      const ctx = { tx: NO_PRISMA_TX, tenant, contact, isNewContact: false, message: { id: `flow-call-${call.id}`, type: "flow_call_result" }, session, now };
      const routed = await deps.flowHandler.resume(ctx, call.id, result);
      if (!routed) return null;
      if (routed.session) await saveSession(q, session, routed.session);
      const outbound = await Outbox.insert(q, { tenantId: tenant.id, contactId: contact.id, contents: routed.replies, now }, { commit: true });
      return { outbound, afterCommit: routed.afterCommit };
    },
    { lockKey: BigInt(call.lockKey) },
  );
  if (!outcome) return "stale";
  await deps.outbox.dispatch(outcome.outbound);
  await outcome.afterCommit?.();
  return "resumed";
}
