import { createHash } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
// redis-parser is what ioredis itself parses RESP with (a dependency of ioredis, untyped)
// eslint-disable-next-line @typescript-eslint/no-require-imports
const RedisParser = require("redis-parser") as new (opts: { returnReply(r: unknown): void; returnError(e: Error): void; returnFatalError?(e: Error): void; returnBuffers?: boolean }) => { execute(b: Buffer): void };

/**
 * A TCP proxy between the bot and PostgreSQL or Redis that parses each protocol's framing and counts what the client
 * asks for (issue 16, "round trips are budgeted and measured"). Bytes pass through unchanged and in order; counting
 * never delays them.
 *
 * PostgreSQL (frontend messages: a type byte and an int32 length, after the untyped startup packet; the connection must
 * be plaintext, as on loopback here: inside TLS nothing can be parsed):
 *   - a **round trip** is one request the client then waits for: a simple query (`Q`, which may hold several
 *     statements, e.g. `BEGIN; …; COMMIT`) or an extended-protocol `Sync` (`S`, closing Parse/Bind/Describe/Execute:
 *     what `pg` sends for every parameterised query). `pg` never pipelines, so each ends in its own ReadyForQuery.
 *   - `connects`: startup packets (a new pool connection: its authentication exchange is not counted as round trips).
 *   - the SQL of each round trip is kept (the `Q` text, or the statement a `Bind` names), to say what they are.
 * Redis (RESP commands from the client are arrays; the server's replies are matched to them in order, per connection):
 *   - **commands**: every command the client sends (a MULTI … EXEC batch is its commands, MULTI and EXEC included;
 *     an EVALSHA is named by the BullMQ script it runs).
 *   - **round trips**: a command written on a connection with no reply outstanding starts one; the commands written
 *     before its replies are read (an ioredis pipeline, a MULTI, calls that share the connection meanwhile) ride in it.
 *   - a blocking read (BZPOPMIN: how an idle BullMQ worker waits for a job) is counted when its reply arrives, and only
 *     if it returned something (the worker woke up for a job); one that timed out empty is idle waiting, counted in
 *     `background` and not in the totals.
 *   - `background`: commands of the periodic machinery that belongs to no operation (BullMQ's stalled-job check, the
 *     worker heartbeat, idle blocking reads that timed out). They are counted apart, never in the totals.
 */

export interface PgCounts {
  roundTrips: number;
  /** simple-protocol queries (Q) */
  simpleQueries: number;
  /** extended-protocol syncs (S) */
  syncs: number;
  connects: number;
  /** the statements of each round trip, in order */
  statements: string[];
}

export interface RedisCounts {
  commands: number;
  roundTrips: number;
  connects: number;
  /** commands by name (EVALSHA/EVAL by BullMQ script name, `eval:<sha prefix>` for our own scripts) */
  byName: Record<string, number>;
  /** periodic commands outside any operation (never in the totals), by name */
  background: Record<string, number>;
}

const BLOCKING = new Set(["bzpopmin", "bzpopmax", "blpop", "brpop", "brpoplpush", "blmove", "bzmpop", "blmpop"]);

/** sha1 of each BullMQ Lua script → its name (ioredis runs a defined command as EVALSHA <sha1 of the source>) */
let scriptNames: Map<string, string> | null = null;
function scriptName(sha: string): string {
  if (!scriptNames) {
    scriptNames = new Map();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const scripts = require("bullmq/dist/cjs/scripts") as Record<string, { name: string; content: string }>;
    for (const s of Object.values(scripts)) scriptNames.set(createHash("sha1").update(s.content).digest("hex"), s.name);
  }
  return scriptNames.get(sha.toLowerCase()) ?? `eval:${sha.slice(0, 8)}`;
}

function commandName(args: unknown[]): string {
  const name = String(args[0] ?? "?").toLowerCase();
  if (name === "evalsha") return scriptName(String(args[1] ?? ""));
  if (name === "eval") return scriptName(createHash("sha1").update(String(args[1] ?? "")).digest("hex"));
  return name;
}

/** commands of the periodic machinery, not of an operation */
function isBackground(name: string, args: unknown[]): boolean {
  if (name === "moveStalledJobsToWait") return true;
  return args.some((a) => typeof a === "string" && a.includes(":heartbeat:"));
}

abstract class CountingProxyBase {
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  port = 0;

  protected abstract track(client: Socket, upstream: Socket): void;

  protected async listen(target: { host: string; port: number }): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(target.port, target.host);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      this.track(client, upstream);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  /** The same URL (postgresql:// or redis://), through this proxy. */
  url(target: string): string {
    const u = new URL(target);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

export class PgCountingProxy extends CountingProxyBase {
  private counts: PgCounts = { roundTrips: 0, simpleQueries: 0, syncs: 0, connects: 0, statements: [] };

  static async start(target: { host: string; port: number }): Promise<PgCountingProxy> {
    const p = new PgCountingProxy();
    await p.listen(target);
    return p;
  }

  /** the counts so far; `since(before)` gives an operation's */
  snapshot(): PgCounts {
    return { ...this.counts, statements: [...this.counts.statements] };
  }

  since(before: PgCounts): PgCounts {
    const now = this.snapshot();
    return {
      roundTrips: now.roundTrips - before.roundTrips,
      simpleQueries: now.simpleQueries - before.simpleQueries,
      syncs: now.syncs - before.syncs,
      connects: now.connects - before.connects,
      statements: now.statements.slice(before.statements.length),
    };
  }

  protected track(client: Socket): void {
    let buf: Buffer = Buffer.alloc(0);
    let started = false; // the startup packet (untyped) is behind us
    const prepared = new Map<string, string>(); // statement name → SQL (Parse)
    let batch: string[] = []; // the statements bound since the last Sync
    client.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (!started) {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          // SSLRequest / GSSENCRequest are followed by another startup packet; CancelRequest ends the connection
          if (code === 196608) {
            started = true;
            this.counts.connects++;
          }
          continue;
        }
        if (buf.length < 5) return;
        const type = String.fromCharCode(buf[0]!);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) return;
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        const cstrings = (n: number): string[] => {
          const out: string[] = [];
          let at = 0;
          for (let i = 0; i < n; i++) {
            const end = body.indexOf(0, at);
            out.push(body.toString("utf8", at, end));
            at = end + 1;
          }
          return out;
        };
        if (type === "Q") {
          this.counts.roundTrips++;
          this.counts.simpleQueries++;
          this.counts.statements.push(oneLine(cstrings(1)[0]!));
        } else if (type === "P") {
          const [name, sql] = cstrings(2);
          prepared.set(name!, sql!);
        } else if (type === "B") {
          const [, statement] = cstrings(2);
          batch.push(oneLine(prepared.get(statement!) ?? "(unknown prepared statement)"));
        } else if (type === "S") {
          this.counts.roundTrips++;
          this.counts.syncs++;
          this.counts.statements.push(batch.join(" ; ") || "(sync)");
          batch = [];
        }
      }
    });
  }
}

const oneLine = (sql: string) => sql.replace(/\s+/g, " ").trim().slice(0, 200);

export class RedisCountingProxy extends CountingProxyBase {
  private counts: RedisCounts = { commands: 0, roundTrips: 0, connects: 0, byName: {}, background: {} };

  static async start(target: { host: string; port: number }): Promise<RedisCountingProxy> {
    const p = new RedisCountingProxy();
    await p.listen(target);
    return p;
  }

  snapshot(): RedisCounts {
    return { ...this.counts, byName: { ...this.counts.byName }, background: { ...this.counts.background } };
  }

  since(before: RedisCounts): RedisCounts {
    const now = this.snapshot();
    const diff = (a: Record<string, number>, b: Record<string, number>) =>
      Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)] as const).filter(([, v]) => v !== 0));
    return {
      commands: now.commands - before.commands,
      roundTrips: now.roundTrips - before.roundTrips,
      connects: now.connects - before.connects,
      byName: diff(now.byName, before.byName),
      background: diff(now.background, before.background),
    };
  }

  private count(name: string, args: unknown[], startsRoundTrip: boolean): void {
    if (isBackground(name, args)) {
      this.counts.background[name] = (this.counts.background[name] ?? 0) + 1;
      return;
    }
    this.counts.commands++;
    if (startsRoundTrip) this.counts.roundTrips++;
    this.counts.byName[name] = (this.counts.byName[name] ?? 0) + 1;
  }

  protected track(client: Socket, upstream: Socket): void {
    this.counts.connects++;
    // the commands sent and not yet answered on this connection, in order
    const pending: { name: string; args: unknown[]; blocking: boolean }[] = [];
    const fromClient = new RedisParser({
      returnReply: (reply: unknown) => {
        const args = Array.isArray(reply) ? (reply as unknown[]) : [reply];
        const name = commandName(args);
        const blocking = BLOCKING.has(name);
        const startsRoundTrip = pending.length === 0;
        pending.push({ name, args, blocking });
        if (!blocking) this.count(name, args, startsRoundTrip);
      },
      returnError: () => undefined,
      returnFatalError: () => undefined,
    });
    const onReply = (reply: unknown) => {
      const cmd = pending.shift();
      if (!cmd?.blocking) return;
      // a blocking read counts when it returns a value (woken for a job); an empty one was idle waiting
      if (reply === null || (Array.isArray(reply) && reply.length === 0)) {
        this.counts.background[`${cmd.name} (timed out)`] = (this.counts.background[`${cmd.name} (timed out)`] ?? 0) + 1;
      } else {
        this.count(cmd.name, cmd.args, true);
      }
    };
    const fromServer = new RedisParser({ returnReply: onReply, returnError: () => onReply("error"), returnFatalError: () => undefined });
    client.on("data", (chunk: Buffer) => fromClient.execute(chunk));
    upstream.on("data", (chunk: Buffer) => fromServer.execute(chunk));
  }
}

/** host and port of a postgresql:// or redis:// URL */
export function target(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || "127.0.0.1", port: Number(u.port || defaultPort) };
}
