import { recordAudit } from "../audit/audit";
import { Prisma, transaction, type PrismaClient, type Tx } from "../db/prisma";
import { systemClock, type Clock } from "../shared/clock";
import { TtlCache } from "../shared/ttl-cache";
import { validateFlow, type FlowDefinition } from "./schema";

/**
 * Published flows: every publish is a new integer version (1, 2, 3, …) of a flow of one tenant, live at once.
 * History is append-only: a rollback publishes a copy of an older version's definition as a new version.
 *
 * Definitions are stored normalised: the document as `validateFlow` returns it (defaults filled in), without
 * `version` (the server numbers versions) and `$schema` (editor metadata). Such a document is still a valid flow
 * file: validating it again gives the same document.
 *
 * Caches (per process):
 * - `liveDefinitions(tenant)` (the engine's trigger matching) is cached ~2 s per tenant and invalidated in this
 *   process on publish, rollback and delete. With several processes, the others see a change within the TTL.
 * - `definitionAt(tenant, name, version)` (a session finishes on the version it started with) caches versions
 *   forever in a bounded LRU map: a published version never changes. Each lookup is checked against the
 *   (2 s cached) live list: a deleted flow answers `null` — sessions on it end at their next message — and a flow
 *   deleted and re-created under the same name (its versions start again at 1) is never served from the old one's
 *   cache entries, since entries are keyed by the flow row's id.
 */
export interface PublishResult {
  name: string;
  version: number;
  /** true when this publish created the flow (version 1) */
  created: boolean;
  /** true when `skipIf` decided nothing should be published (version is then the live one) */
  skipped?: boolean;
}

export interface FlowSummary {
  name: string;
  /** the live version */
  version: number;
  description: string | null;
  triggers: FlowDefinition["triggers"];
  source: string;
  updatedAt: string;
  /** how many versions exist */
  versions: number;
}

export interface FlowVersionInfo {
  version: number;
  createdAt: string;
  publishedBy: string;
  live: boolean;
}

export interface LiveFlow {
  name: string;
  version: number;
  definition: FlowDefinition;
}

export interface CurrentFlow {
  source: string;
  version: number;
  definition: unknown;
}

export interface PublishOptions {
  /** decided under the flow's row lock: return true to publish nothing (e.g. the built-in installer) */
  skipIf?: (current: CurrentFlow | null) => boolean;
  /** audit type; default "flow.published" */
  auditType?: string;
  auditData?: Record<string, unknown>;
}

export class FlowNotFoundError extends Error {
  override readonly name = "FlowNotFoundError";
  constructor(readonly flow: string, readonly version?: number) {
    super(version === undefined ? `No flow named '${flow}'` : `Flow '${flow}' has no version ${version}`);
  }
}

const LIVE_TTL_MS = 2_000;
const VERSION_CACHE_MAX = 1_000;

interface LiveEntry {
  at: number;
  flows: Map<string, LiveFlow & { flowId: string }>;
}

/** The stored form of a definition: validated (defaults filled in), without `version` and `$schema`. */
export function normaliseDefinition(definition: FlowDefinition): FlowDefinition {
  const { version: _v, $schema: _s, ...rest } = definition;
  return rest as FlowDefinition;
}

/** Deep equality of JSON values, ignoring key order (PostgreSQL's jsonb reorders keys). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => Object.prototype.hasOwnProperty.call(bo, k) && jsonEqual(ao[k], bo[k]));
}

/** A stored definition, validated again (the schema may have gained defaults since); null if it no longer validates. */
function revive(definition: unknown): FlowDefinition | null {
  const r = validateFlow(definition);
  return r.ok ? normaliseDefinition(r.flow) : null;
}

export class FlowStore {
  private readonly prisma: PrismaClient;
  private readonly clock: Clock;
  /** tenant → its live flows, for LIVE_TTL_MS of the clock from the start of their read */
  private readonly live: TtlCache<string, LiveEntry>;
  private readonly liveLoading = new Map<string, Promise<LiveEntry>>();
  private readonly generations = new Map<string, number>();
  /** `${flowId}:${version}` → definition; insertion order = recency (LRU-ish) */
  private readonly versionCache = new Map<string, FlowDefinition>();

  private static readonly byClient = new WeakMap<PrismaClient, FlowStore>();

  /**
   * The process's store for one Prisma client, so the admin API and the engine share caches (a publish through the
   * API invalidates the engine's live list at once in this process). Core may hold one instead (`core.flows`).
   */
  static shared(prisma: PrismaClient, clock?: Clock): FlowStore {
    let store = FlowStore.byClient.get(prisma);
    if (!store) {
      store = new FlowStore({ prisma, clock });
      FlowStore.byClient.set(prisma, store);
    }
    return store;
  }

  constructor(deps: { prisma: PrismaClient; clock?: Clock }) {
    this.prisma = deps.prisma;
    this.clock = deps.clock ?? systemClock;
    this.live = new TtlCache({ ttlMs: LIVE_TTL_MS, max: 10_000, clock: this.clock });
  }

  /**
   * Publishes a definition as the next version of its flow (created at version 1), live at once. One transaction:
   * the flow row is created if missing, then locked (SELECT … FOR UPDATE), so concurrent publishes of one flow get
   * consecutive versions. The audit row is written in the same transaction.
   */
  async publish(tenantId: string, definition: FlowDefinition, publishedBy: string, source = "api", opts: PublishOptions = {}): Promise<PublishResult> {
    const doc = normaliseDefinition(definition);
    const name = doc.name;
    const result = await transaction(this.prisma, async (tx) => {
      const inserted = await tx.$queryRaw<{ id: string }[]>`
        INSERT INTO flows (id, tenant_id, name, live_version, source, updated_at)
        VALUES (gen_random_uuid(), ${tenantId}::uuid, ${name}, 0, ${source}, ${this.clock.now()})
        ON CONFLICT (tenant_id, name) DO NOTHING
        RETURNING id`;
      const [row] = await tx.$queryRaw<{ id: string; live_version: number; source: string }[]>`
        SELECT id, live_version, source FROM flows WHERE tenant_id = ${tenantId}::uuid AND name = ${name} FOR UPDATE`;
      if (!row) throw new Error(`flow ${name} vanished while publishing`);
      const created = inserted.length > 0;
      if (opts.skipIf) {
        const current = created ? null : await this.currentIn(tx, row.id, row.live_version, row.source);
        if (opts.skipIf(current)) {
          if (created) throw new SkipCreated(); // roll the empty row back
          return { name, version: row.live_version, created: false, skipped: true };
        }
      }
      const last = await tx.flowVersion.aggregate({ where: { flowId: row.id }, _max: { version: true } });
      const version = (last._max.version ?? 0) + 1;
      await tx.flowVersion.create({
        data: { flowId: row.id, version, definition: doc as unknown as Prisma.InputJsonValue, publishedBy, createdAt: this.clock.now() },
      });
      await tx.flow.update({ where: { id: row.id }, data: { liveVersion: version, source, updatedAt: this.clock.now() } });
      await recordAudit(tx, {
        tenantId,
        type: opts.auditType ?? "flow.published",
        actor: publishedBy,
        subject: `flow:${name}`,
        data: { flow: name, version, source, ...(opts.auditData ?? {}) },
        at: this.clock.now(),
      });
      return { name, version, created };
    }).catch((err) => {
      if (err instanceof SkipCreated) return { name, version: 0, created: false, skipped: true };
      throw err;
    });
    if (!result.skipped) this.invalidate(tenantId);
    return result;
  }

  private async currentIn(tx: Tx, flowId: string, liveVersion: number, source: string): Promise<CurrentFlow | null> {
    const v = await tx.flowVersion.findUnique({ where: { flowId_version: { flowId, version: liveVersion } }, select: { definition: true } });
    return v ? { source, version: liveVersion, definition: v.definition } : null;
  }

  /** The tenant's flows with their live version, by name. */
  async list(tenantId: string): Promise<FlowSummary[]> {
    const rows = await this.prisma.$queryRaw<{ name: string; live_version: number; source: string; updated_at: Date; definition: unknown; versions: bigint }[]>`
      SELECT f.name, f.live_version, f.source, f.updated_at, v.definition,
             (SELECT count(*) FROM flow_versions c WHERE c.flow_id = f.id) AS versions
      FROM flows f
      LEFT JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.live_version
      WHERE f.tenant_id = ${tenantId}::uuid AND f.live_version > 0
      ORDER BY f.name`;
    return rows.map((r) => {
      const def = (r.definition ?? {}) as Partial<FlowDefinition>;
      return {
        name: r.name,
        version: r.live_version,
        description: typeof def.description === "string" ? def.description : null,
        triggers: Array.isArray(def.triggers) ? def.triggers : [],
        source: r.source,
        updatedAt: new Date(r.updated_at).toISOString(),
        versions: Number(r.versions),
      };
    });
  }

  /** The live definition of a flow, or the given version of it; null when there is no such flow or version. */
  async get(tenantId: string, name: string, version?: number): Promise<LiveFlow | null> {
    const flow = await this.prisma.flow.findUnique({ where: { tenantId_name: { tenantId, name } }, select: { id: true, liveVersion: true } });
    if (!flow || flow.liveVersion < 1) return null;
    const v = version ?? flow.liveVersion;
    const row = await this.prisma.flowVersion.findUnique({ where: { flowId_version: { flowId: flow.id, version: v } }, select: { definition: true } });
    if (!row) return null;
    return { name, version: v, definition: row.definition as unknown as FlowDefinition };
  }

  /** Every version of a flow, newest first; null when there is no such flow. */
  async versions(tenantId: string, name: string): Promise<FlowVersionInfo[] | null> {
    const flow = await this.prisma.flow.findUnique({ where: { tenantId_name: { tenantId, name } }, select: { id: true, liveVersion: true } });
    if (!flow || flow.liveVersion < 1) return null;
    const rows = await this.prisma.flowVersion.findMany({
      where: { flowId: flow.id },
      orderBy: { version: "desc" },
      select: { version: true, createdAt: true, publishedBy: true },
    });
    return rows.map((r) => ({ version: r.version, createdAt: r.createdAt.toISOString(), publishedBy: r.publishedBy, live: r.version === flow.liveVersion }));
  }

  /** Publishes a copy of `toVersion`'s definition as a new version (history stays append-only). */
  async rollback(tenantId: string, name: string, toVersion: number, by: string): Promise<PublishResult> {
    const old = await this.get(tenantId, name, toVersion);
    if (!old) {
      if (!(await this.get(tenantId, name))) throw new FlowNotFoundError(name);
      throw new FlowNotFoundError(name, toVersion);
    }
    const def = revive(old.definition) ?? (old.definition as FlowDefinition);
    return this.publish(tenantId, def, by, "api", { auditType: "flow.rolled_back", auditData: { fromVersion: toVersion } });
  }

  /**
   * Removes a flow and all its versions. Sessions on it end at their next message: `definitionAt` answers null
   * for a flow that no longer exists (in other processes, within the ~2 s live-cache TTL).
   */
  async delete(tenantId: string, name: string, by = "system"): Promise<boolean> {
    const deleted = await transaction(this.prisma, async (tx) => {
      const r = await tx.flow.deleteMany({ where: { tenantId, name } });
      if (r.count === 0) return false;
      await recordAudit(tx, { tenantId, type: "flow.deleted", actor: by, subject: `flow:${name}`, data: { flow: name }, at: this.clock.now() });
      return true;
    });
    if (deleted) this.invalidate(tenantId);
    return deleted;
  }

  /** The live definitions of a tenant's flows (for trigger matching), cached ~2 s. */
  async liveDefinitions(tenantId: string): Promise<LiveFlow[]> {
    const entry = await this.liveEntry(tenantId);
    return [...entry.flows.values()].map(({ name, version, definition }) => ({ name, version, definition }));
  }

  /**
   * One version of a flow (a session finishes on the version it started with); null when the flow was deleted or
   * the version does not exist. Versions never change, so they are cached for good (bounded LRU).
   */
  async definitionAt(tenantId: string, name: string, version: number): Promise<FlowDefinition | null> {
    const live = (await this.liveEntry(tenantId)).flows.get(name);
    if (!live) return null;
    if (live.version === version) return live.definition;
    const key = `${live.flowId}:${version}`;
    const hit = this.versionCache.get(key);
    if (hit) {
      this.versionCache.delete(key);
      this.versionCache.set(key, hit);
      return hit;
    }
    const row = await this.prisma.flowVersion.findUnique({ where: { flowId_version: { flowId: live.flowId, version } }, select: { definition: true } });
    const def = row ? revive(row.definition) : null;
    if (!def) return null;
    this.versionCache.set(key, def);
    while (this.versionCache.size > VERSION_CACHE_MAX) this.versionCache.delete(this.versionCache.keys().next().value!);
    return def;
  }

  /** Drops this process's cached live list of a tenant (all tenants without an argument). */
  invalidate(tenantId?: string): void {
    const tenants = tenantId === undefined ? [...new Set([...this.live.keys(), ...this.liveLoading.keys()])] : [tenantId];
    for (const t of tenants) {
      this.generations.set(t, this.generation(t) + 1);
      this.live.delete(t);
      this.liveLoading.delete(t);
    }
  }

  private async liveEntry(tenantId: string): Promise<LiveEntry> {
    const cached = this.live.get(tenantId);
    if (cached) return cached;
    let loading = this.liveLoading.get(tenantId);
    if (!loading) {
      const generation = this.generation(tenantId);
      const p = this.loadLive(tenantId).then((entry) => {
        // cache only what no invalidation overtook while it loaded
        if (this.generation(tenantId) === generation) this.live.set(tenantId, entry, entry.at + LIVE_TTL_MS - this.clock.now().getTime());
        return entry;
      });
      loading = p.finally(() => {
        if (this.liveLoading.get(tenantId) === loading) this.liveLoading.delete(tenantId);
      });
      this.liveLoading.set(tenantId, loading);
    }
    return loading;
  }

  private generation(tenantId: string): number {
    return this.generations.get(tenantId) ?? 0;
  }

  private async loadLive(tenantId: string): Promise<LiveEntry> {
    const at = this.clock.now().getTime();
    const rows = await this.prisma.$queryRaw<{ id: string; name: string; live_version: number; definition: unknown }[]>`
      SELECT f.id, f.name, f.live_version, v.definition
      FROM flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.live_version
      WHERE f.tenant_id = ${tenantId}::uuid
      ORDER BY f.name`;
    const flows = new Map<string, LiveFlow & { flowId: string }>();
    for (const r of rows) {
      const definition = revive(r.definition);
      if (definition) flows.set(r.name, { flowId: r.id, name: r.name, version: r.live_version, definition });
    }
    return { at, flows };
  }
}

class SkipCreated extends Error {}
