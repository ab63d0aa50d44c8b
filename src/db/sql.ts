import pg, { Pool, type PoolClient, type QueryResult, type QueryResultRow } from "pg";
import type { PrismaClient, Tx } from "./prisma";

/**
 * A thin SQL layer for the hot paths (inbound handling, sends, statuses): hand-written parameterised statements
 * on the same pg pool as Prisma, without Prisma's query compiler and interactive-transaction machinery
 * (≈10× less CPU per statement and per transaction). Prisma stays for the schema, migrations and cold paths.
 *
 * Statements may be named (`{ name, text }`): pg then prepares them once per connection.
 * Column names are the snake_case ones of prisma/migrations; enum columns must be cast to text when read
 * (the Prisma fallback below cannot read PostgreSQL enums in raw queries).
 */
export type Statement = string | { name: string; text: string };

export interface QueryOptions {
  /**
   * Inside `Sql.transaction`: this is the transaction's last statement; COMMIT is sent in the same round trip.
   * Nothing may be run in the transaction after it (a later statement would run outside the transaction).
   */
  commit?: boolean;
}

export interface Queryable {
  /** the rows of one statement */
  query<R extends QueryResultRow = Record<string, unknown>>(statement: Statement, values?: unknown[], opts?: QueryOptions): Promise<R[]>;
  /** the number of rows one statement affected */
  execute(statement: Statement, values?: unknown[], opts?: QueryOptions): Promise<number>;
}

export interface TransactionOptions {
  /** pg_advisory_xact_lock on this key, taken in the same round trip as BEGIN */
  lockKey?: bigint;
  /** pg_advisory_xact_lock(hashtextextended(lockText, 42)), taken in the same round trip as BEGIN */
  lockText?: string;
}

export interface Sql extends Queryable {
  /** One transaction (READ COMMITTED): committed when `fn` resolves, rolled back when it throws. */
  transaction<T>(fn: (q: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T>;
}

/** Like Prisma's interactive transactions (timeout 30 s): no statement of a hot-path transaction waits longer. */
const STATEMENT_TIMEOUT_MS = 30_000;

function text(s: Statement): string {
  return typeof s === "string" ? s : s.text;
}

/** BEGIN, the statement timeout and the advisory locks of a transaction, as parameterised statements. */
function beginStatements(opts: TransactionOptions | undefined): { text: string; values: (string | null)[] }[] {
  const out = [
    { text: "BEGIN", values: [] as string[] },
    { text: `SET LOCAL statement_timeout = ${STATEMENT_TIMEOUT_MS}`, values: [] as string[] },
  ];
  if (opts?.lockKey !== undefined) out.push({ text: `SELECT pg_advisory_xact_lock($1::bigint)`, values: [BigInt.asIntN(64, opts.lockKey).toString()] });
  if (opts?.lockText !== undefined) out.push({ text: `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 42))`, values: [opts.lockText] });
  return out;
}

const COMMIT = [{ text: "COMMIT", values: [] as string[] }];

// pg's Query, extended below to pipeline statements (pg does not expose pipelining; these are its documented
// wire-protocol methods on the connection, used the way pg's own Query.prepare uses them)
const PgQuery = (pg as unknown as { Query: new (config: object) => PgQueryInternals }).Query;
type ResultCallback = (err: Error | null, res: unknown) => void;
interface PgQueryInternals {
  portal: string;
  prepare(connection: PgConnection): void;
  _getRows(connection: PgConnection, rows?: number): void;
}
interface PgConnection {
  parsedStatements: Record<string, string>;
  parse(msg: { text: string; name: string; types: unknown[] }): void;
  bind(msg: { statement: string; portal: string; values: unknown[] }): void;
  describe(msg: { type: "P"; name: string }): void;
  execute(msg: { portal: string; rows?: number }): void;
  sync(): void;
}

/**
 * One statement with others before (BEGIN, locks) and/or after (COMMIT) it, in one round trip: every statement is
 * Parse/Bind/Describe/Execute'd and a single Sync ends them, so an error skips the rest (PostgreSQL's pipelining).
 * The result is an array with one entry per statement.
 */
class PipelinedQuery extends PgQuery {
  constructor(
    config: { text: string; name?: string; values: unknown[]; queryMode: "extended"; callback: ResultCallback },
    private readonly before: { text: string; values: (string | null)[] }[],
    private readonly after: { text: string; values: (string | null)[] }[],
  ) {
    super(config);
  }

  /** Runs the statements; one result per statement. */
  static run<R extends QueryResultRow>(
    client: PoolClient,
    config: { text: string; name?: string; values: unknown[] },
    before: { text: string; values: (string | null)[] }[],
    after: { text: string; values: (string | null)[] }[],
  ): Promise<QueryResult<R>[]> {
    return new Promise((resolve, reject) => {
      const callback: ResultCallback = (err, res) => (err ? reject(err) : resolve(res as QueryResult<R>[]));
      // queryMode "extended": always through prepare() (pg would send a value-less statement as a simple query)
      client.query(new PipelinedQuery({ ...config, queryMode: "extended", callback }, before, after) as never);
    });
  }

  private send(connection: PgConnection, list: { text: string; values: (string | null)[] }[]) {
    for (const st of list) {
      connection.parse({ text: st.text, name: "", types: [] });
      connection.bind({ statement: "", portal: "", values: st.values });
      connection.describe({ type: "P", name: "" });
      connection.execute({ portal: "" });
    }
  }

  override prepare(connection: PgConnection): void {
    this.send(connection, this.before);
    super.prepare(connection);
  }

  override _getRows(connection: PgConnection): void {
    connection.execute({ portal: this.portal });
    this.send(connection, this.after);
    connection.sync();
  }
}

/** Whether a named statement is known to be prepared on this connection (pg's own bookkeeping). */
function isPrepared(client: PoolClient, statement: Statement): boolean {
  if (typeof statement === "string") return true; // unnamed: parsed with every use anyway
  const parsed = (client as unknown as { connection?: { parsedStatements?: Record<string, string> } }).connection?.parsedStatements;
  return parsed?.[statement.name] === statement.text;
}

/** Statements on the pool, each on whichever connection is free (`commit` has no meaning outside a transaction). */
class PgQueryable implements Queryable {
  constructor(private readonly client: Pool | PoolClient) {}

  async query<R extends QueryResultRow>(statement: Statement, values: unknown[] = []): Promise<R[]> {
    const res = await this.client.query<R>(typeof statement === "string" ? { text: statement, values } : { name: statement.name, text: statement.text, values });
    return res.rows;
  }

  async execute(statement: Statement, values: unknown[] = []): Promise<number> {
    const res = await this.client.query(typeof statement === "string" ? { text: statement, values } : { name: statement.name, text: statement.text, values });
    return res.rowCount ?? 0;
  }
}

/**
 * A transaction's connection: BEGIN and the locks go with the first statement, COMMIT with the one marked
 * `commit`, each in the same round trip (pipelined). A named statement not yet prepared on this connection is
 * sent on its own the first time, so a failure before its Parse can never leave pg believing it is prepared.
 */
class PgTransactionQueryable implements Queryable {
  begun = false;
  committed = false;

  constructor(
    private readonly client: PoolClient,
    private readonly opts: TransactionOptions | undefined,
  ) {}

  private async run<R extends QueryResultRow>(statement: Statement, values: unknown[], opts?: QueryOptions): Promise<{ rows: R[]; rowCount: number }> {
    if (this.committed) throw new Error("statement after the transaction's COMMIT");
    const before = this.begun ? [] : beginStatements(this.opts);
    const after = opts?.commit ? COMMIT : [];
    const config = typeof statement === "string" ? { text: statement, values } : { name: statement.name, text: statement.text, values };
    this.begun = true; // from here on, a failure is rolled back
    if (!isPrepared(this.client, statement)) {
      if (before.length) await PipelinedQuery.run(this.client, { text: "SELECT 1", values: [] }, before, []);
      const res = await this.client.query<R>(config);
      if (after.length) await this.commit();
      return { rows: res.rows, rowCount: res.rowCount ?? 0 };
    }
    if (after.length) this.committed = true;
    if (before.length === 0 && after.length === 0) {
      const res = await this.client.query<R>(config);
      return { rows: res.rows, rowCount: res.rowCount ?? 0 };
    }
    const results = await PipelinedQuery.run<R>(this.client, config, before, after);
    const res = results[before.length]!;
    return { rows: res.rows, rowCount: res.rowCount ?? 0 };
  }

  async query<R extends QueryResultRow>(statement: Statement, values: unknown[] = [], opts?: QueryOptions): Promise<R[]> {
    return (await this.run<R>(statement, values, opts)).rows;
  }

  async execute(statement: Statement, values: unknown[] = [], opts?: QueryOptions): Promise<number> {
    return (await this.run(statement, values, opts)).rowCount;
  }

  /** Several statements in one round trip (see `batch` below); one row list per statement. */
  async batch(list: BatchStatement[], opts?: QueryOptions): Promise<Record<string, unknown>[][]> {
    if (this.committed) throw new Error("statement after the transaction's COMMIT");
    if (list.length === 0) {
      if (opts?.commit) await this.commit();
      return [];
    }
    const before = this.begun ? [] : beginStatements(this.opts);
    const after = opts?.commit ? COMMIT : [];
    this.begun = true;
    if (after.length) this.committed = true;
    const [first, ...rest] = list.map((st) => ({ text: text(st.statement), values: st.values.map(wireValue) }));
    const res = await PipelinedQuery.run(this.client, first!, before, [...rest, ...after]);
    const results = Array.isArray(res) ? res : [res as unknown as QueryResult]; // pg gives one statement's result bare
    return results.slice(before.length, before.length + list.length).map((r) => r.rows as Record<string, unknown>[]);
  }

  async commit(): Promise<void> {
    if (this.committed) return;
    this.committed = true;
    if (this.begun) await this.client.query("COMMIT");
  }
}

/** One statement of a `batch`. */
export interface BatchStatement {
  statement: Statement;
  values: unknown[];
}

/** A parameter as pg sends it (text format); what pg's own prepareValue does for the types used here. */
function wireValue(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/**
 * Runs statements in order inside a transaction. On the pg pool they go in ONE round trip (pipelined, one Sync:
 * an error skips the rest and the transaction is rolled back by `Sql.transaction`), with COMMIT too when
 * `opts.commit`; through the Prisma fallback they run one after another. Returns one row list per statement.
 * Statements whose values depend on an earlier statement's result cannot be batched with it.
 */
export async function batch(q: Queryable, list: BatchStatement[], opts?: QueryOptions): Promise<Record<string, unknown>[][]> {
  if (q instanceof PgTransactionQueryable) return q.batch(list, opts);
  const out: Record<string, unknown>[][] = [];
  for (const [i, st] of list.entries()) out.push(await q.query(st.statement, st.values, { commit: opts?.commit && i === list.length - 1 }));
  return out;
}

/** The pg implementation: one pooled connection per transaction, with BEGIN and COMMIT pipelined. */
export class PgSql extends PgQueryable implements Sql {
  constructor(readonly pool: Pool) {
    super(pool);
  }

  async transaction<T>(fn: (q: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T> {
    const client = await this.pool.connect();
    // pg-pool takes its error listener off a client while it is checked out: a connection reset while this
    // transaction holds it (PostgreSQL restarted, a network cut) would be an unhandled 'error' event and crash the
    // process. The statement in flight fails with the same error (so does the transaction: the job retries); here
    // it is only noted, and the client is destroyed on release instead of going back to the pool.
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
    };
    client.on("error", onError);
    const q = new PgTransactionQueryable(client, opts);
    // a connection whose ROLLBACK failed is in an unknown state: it is destroyed, not reused
    let broken: Error | undefined;
    try {
      const result = await fn(q);
      await q.commit();
      return result;
    } catch (err) {
      // aborted, still open, or ended by a failed COMMIT (then ROLLBACK only warns): safe in every case
      if (q.begun) await client.query("ROLLBACK").catch((e: Error) => (broken = e));
      throw err;
    } finally {
      client.removeListener("error", onError);
      client.release(broken ?? lost);
    }
  }
}

/** Raw statements through a Prisma client or transaction (the fallback when no pg pool is known). */
export function prismaQueryable(client: Pick<PrismaClient, "$queryRawUnsafe" | "$executeRawUnsafe"> | Tx): Queryable {
  return {
    query: <R>(statement: Statement, values: unknown[] = []) => client.$queryRawUnsafe<R[]>(text(statement), ...values),
    execute: (statement: Statement, values: unknown[] = []) => client.$executeRawUnsafe(text(statement), ...values),
  };
}

/** Runs the BEGIN-time locks of `opts` inside a Prisma transaction. */
export async function prismaLocks(tx: Tx, opts?: TransactionOptions): Promise<void> {
  if (opts?.lockKey !== undefined) await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock($1::bigint)`, BigInt.asIntN(64, opts.lockKey));
  if (opts?.lockText !== undefined) await tx.$queryRawUnsafe(`SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 42))) AS l`, opts.lockText);
}

class PrismaSql implements Sql {
  private readonly q: Queryable;
  constructor(private readonly prisma: PrismaClient) {
    this.q = prismaQueryable(prisma);
  }
  query<R extends QueryResultRow>(statement: Statement, values?: unknown[]): Promise<R[]> {
    return this.q.query<R>(statement, values);
  }
  execute(statement: Statement, values?: unknown[]): Promise<number> {
    return this.q.execute(statement, values);
  }
  transaction<T>(fn: (q: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T> {
    return this.prisma.$transaction(
      async (tx) => {
        await prismaLocks(tx, opts);
        return fn(prismaQueryable(tx));
      },
      { maxWait: 10_000, timeout: 30_000 },
    );
  }
}

const registry = new WeakMap<object, Sql>();

/** Registers the pg pool a Prisma client runs on (createPrisma does), so `sqlFor` can use it directly. */
export function registerPool(prisma: PrismaClient, pool: Pool): void {
  registry.set(prisma, new PgSql(pool));
}

/** The SQL layer for a Prisma client: its own pg pool if known, else raw statements through Prisma. */
export function sqlFor(prisma: PrismaClient): Sql {
  let sql = registry.get(prisma);
  if (!sql) {
    sql = new PrismaSql(prisma);
    registry.set(prisma, sql);
  }
  return sql;
}

/**
 * Whether an error means the connection to PostgreSQL was lost or could not be made (so the statement may succeed
 * on a new connection), as opposed to an error of the statement itself.
 */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin/crash shutdown, cannot connect now)
  if (/^08|^57P0[123]$/.test(code)) return true;
  if (["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"].includes(code)) return true;
  const message = typeof e?.message === "string" ? e.message : "";
  return /Connection terminated|connection error|Client was closed|timeout exceeded when trying to connect|Can't reach database server/i.test(message);
}

/**
 * Runs `fn` again while it fails because PostgreSQL cannot be reached, for up to `budgetMs` (backoff 100 ms → 2 s),
 * then gives up with the last error. For writes that record something only this process knows (a Cloud API send's
 * answer): failing the job instead would throw the answer away, and its retry would send the message again.
 */
export async function retryOnConnectionLoss<T>(fn: () => Promise<T>, budgetMs: number): Promise<T> {
  const until = Date.now() + budgetMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      return await fn();
    } catch (err) {
      if (!isConnectionError(err) || Date.now() + delay > until) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
