import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { Queue } from "bullmq";
import IORedis from "ioredis";
import { Client } from "pg";
import { createSandbox, type Sandbox } from "../../src/sandbox/sandbox";
import { QUEUES } from "../../src/queues/jobs";
import { recordScenario } from "../chaos/report";
import { botProcessEnv, spawnBot, type BotProcess } from "../helpers/bot-process";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";
import { waitFor } from "../helpers/system";
import { sparePort } from "../ops/own-redis";

/**
 * Issue 8, "Scale-out": two API processes and two worker processes (`node --import tsx src/main/api.ts` /
 * `src/main/worker.ts`, as `npm run start:api` / `start:worker` run them) against one Redis and one PostgreSQL.
 * The Cloud API sandbox plays Meta in this process; its webhooks go through a round-robin load balancer (below) to
 * the two API processes, so consecutive messages of one contact land on different processes. 1,000 contacts send 10
 * messages each, all contacts at once: every message must be handled exactly once, each contact's in order, and get
 * exactly one reply. Meta also redelivers: some POSTs are sent a second time to the other API process while the load
 * runs, and a sample again after everything is handled (when the jobs are gone and only PostgreSQL's wamid claim
 * stands between a redelivery and a second reply).
 *
 * The queue prefix is a Redis Cluster hash tag (`{…}`), as docs/scaling.md asks for on Cluster.
 *
 * What the bot runs is an ordinary flow, published through the admin API: the first message `n=1` starts it and is
 * answered `n=1`; then each answer is saved and echoed (`{{v}}`) as the next question. So a reply carries the text of
 * the message it answers, and a message handled out of order shows as a reply out of order (or as a greeting).
 *
 * SCALE_CONTACTS / SCALE_MESSAGES shrink or grow the run (defaults 1,000 × 10).
 */
jest.setTimeout(300_000);

const CONTACTS = Number(process.env.SCALE_CONTACTS ?? 1000);
const PER_CONTACT = Number(process.env.SCALE_MESSAGES ?? 10);
/** messages per webhook POST (Meta batches; each POST carries messages of different contacts) */
const BATCH = 50;
/** every Nth POST is delivered a second time to the other API process while the load runs */
const REDELIVER_EVERY = 10;
/** POSTs redelivered again once everything is handled */
const LATE_REDELIVERIES = 20;

const base = testConfig();
const PREFIX = `{${base.QUEUE_PREFIX}}`; // a hash tag: every key of the deployment in one Redis Cluster slot
const phone = `1555${String(Date.now() % 1e7).padStart(7, "0")}`;
const contactNumber = (i: number) => `49${String(Date.now() % 1e4).padStart(4, "0")}${String(i).padStart(6, "0")}`;

interface Proc {
  name: string;
  bot: BotProcess;
  errors: string[];
  /** log lines "redelivered message ignored": a message found already claimed in PostgreSQL */
  duplicatesSeen: number;
}

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sandbox: Sandbox;
let sandboxServer: { url: string; close(): Promise<void> };
let lb: LoadBalancer;
const procs: Proc[] = [];
const apiPorts: number[] = [];
let pg: Client;

/** A round-robin load balancer for the webhook: the bytes and the signature header pass through untouched. */
class LoadBalancer {
  private next = 0;
  private posts = 0;
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  readonly server: http.Server;
  /** which backend took each body first (by hash), for redelivering to the other one */
  readonly firstBackend = new Map<string, number>();
  readonly statuses: Record<string, number> = {};
  redeliveredDuringLoad = 0;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly backends: string[]) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const idx = this.next++ % this.backends.length;
        const hash = createHash("sha256").update(body).digest("hex");
        if (!this.firstBackend.has(hash)) this.firstBackend.set(hash, idx);
        const signature = String(req.headers["x-hub-signature-256"] ?? "");
        const isMessages = /"messages":\s*\[/.test(body.toString("utf8"));
        const n = isMessages ? ++this.posts : 0;
        this.forward(idx, body, signature).then(
          (status) => {
            this.statuses[status] = (this.statuses[status] ?? 0) + 1;
            res.writeHead(status).end();
            // Meta redelivers: the same bytes to the other process, while the first delivery's jobs still exist
            if (isMessages && n % REDELIVER_EVERY === 0) {
              this.redeliveredDuringLoad++;
              this.track(this.forward((idx + 1) % this.backends.length, body, signature));
            }
          },
          () => res.writeHead(502).end(),
        );
      });
    });
  }

  private track(p: Promise<unknown>) {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  async settle() {
    await Promise.allSettled([...this.pending]);
  }

  forward(idx: number, body: Buffer, signature: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        `${this.backends[idx]}/webhook`,
        { method: "POST", agent: this.agent, headers: { "content-type": "application/json", "content-length": body.length, "x-hub-signature-256": signature } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async close() {
    await new Promise((r) => this.server.close(r));
    this.server.closeAllConnections();
    this.agent.destroy();
  }
}

function start(kind: "api" | "worker", name: string, env: Record<string, string>): Proc {
  const p: Proc = { name, bot: null as unknown as BotProcess, errors: [], duplicatesSeen: 0 };
  p.bot = spawnBot(kind, env, name, (line) => {
    if (/"level":(50|60)/.test(line) && p.errors.length < 20) p.errors.push(line.slice(0, 500));
    if (line.includes("redelivered message ignored")) p.duplicatesSeen++;
  });
  procs.push(p);
  return p;
}

/** CPU seconds (user + system) a child process has used so far, from /proc (Linux). */
function cpuSeconds(p: Proc): number {
  try {
    const stat = readFileSync(`/proc/${p.bot.child.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}



const queues = () => [QUEUES.inbound, QUEUES.outbound, QUEUES.statuses].map((n) => new Queue(n, { connection: new IORedis(base.REDIS_URL, { maxRetriesPerRequest: null }), prefix: PREFIX }));

beforeAll(async () => {
  db = await createTestDatabase();
  sandbox = createSandbox({
    appSecret: base.WHATSAPP_APP_SECRET,
    phoneNumbers: [{ phoneNumberId: base.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: phone, accessToken: base.WHATSAPP_ACCESS_TOKEN }],
    // No status webhooks in this run: scheduled after the test's end (close() drops them). With them, 10,000 replies
    // mean 20,000 more signed POSTs and status jobs, which doubles the work on this 2-core machine; the status path
    // under redelivery and disorder has its own tests (test/e2e, test/outbound).
    autoRead: false,
    statusDelaysMs: { sent: 3_600_000, delivered: 3_600_000 },
    webhookRetry: { attempts: 5, baseDelayMs: 500 },
  });
  sandboxServer = await sandbox.listen();
  pg = new Client({ connectionString: db.url });
  await pg.connect();

  const env = botProcessEnv({ ...base, DATABASE_URL: db.url, QUEUE_PREFIX: PREFIX, WHATSAPP_DISPLAY_PHONE_NUMBER: phone, GRAPH_API_BASE_URL: sandboxServer.url }, {
    // The sandbox does not play Meta's pair rate (131056: about one message per 6 s to one user) unless a fault is
    // injected, and a contact here gets 10 replies in seconds; order per recipient is kept by the outbox either way.
    OUTBOUND_RECIPIENT_GAP_MS: "0",
    // Meta allows up to 1,000 messages/s per number after the throughput upgrade (80 by default)
    OUTBOUND_RATE_PER_SECOND: "1000",
    // pool per process = max(10, inbound + outbound + 4): 2 workers × 28 stay well inside max_connections = 100
    INBOUND_CONCURRENCY: "12",
    OUTBOUND_CONCURRENCY: "12",
  });
  for (let i = 0; i < 2; i++) apiPorts.push(await sparePort());
  const apis = apiPorts.map((port, i) => start("api", `api-${i + 1}`, { ...env, PORT: String(port) }));
  const workers = [1, 2].map((i) => start("worker", `worker-${i}`, env));
  await Promise.all([...apis, ...workers].map((p) => p.bot.ready(undefined, 90_000)));

  lb = new LoadBalancer(apiPorts.map((p) => `http://127.0.0.1:${p}`));
  sandbox.setWebhookUrl(`${await lb.listen()}/webhook`);
});

afterAll(async () => {
  await Promise.all(
    procs.map(async (p) => {
      if (!p.bot.running()) return;
      const t = setTimeout(() => p.bot.child.kill("SIGKILL"), 10_000);
      await p.bot.kill("SIGTERM");
      clearTimeout(t);
    }),
  );
  await lb?.close();
  await sandboxServer?.close();
  await sandbox?.close();
  await pg?.end();
  for (const q of queues()) {
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
    await (await q.client).quit();
  }
  // the OTP queue's repeatable expiry sweep and every other key of this run
  const redis = new IORedis(base.REDIS_URL);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${PREFIX}:*`, "COUNT", 1000);
    if (keys.length) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== "0");
  await redis.quit();
  await db?.drop();
});

async function counts(): Promise<{ inbound: number; outboundSent: number; outbound: number }> {
  const { rows } = await pg.query<{ inbound: string; outbound: string; sent: string }>(
    `SELECT count(*) FILTER (WHERE direction = 'inbound') AS inbound,
            count(*) FILTER (WHERE direction = 'outbound') AS outbound,
            count(*) FILTER (WHERE direction = 'outbound' AND status::text IN ('sent', 'delivered', 'read')) AS sent
       FROM messages`,
  );
  return { inbound: Number(rows[0]!.inbound), outbound: Number(rows[0]!.outbound), outboundSent: Number(rows[0]!.sent) };
}

async function queuesIdle(qs: Queue[]): Promise<boolean> {
  for (const q of qs) {
    const c = await q.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children");
    if (Object.values(c).some((n) => n > 0)) return false;
  }
  return true;
}

function sends(): { to: string; body: string }[] {
  return sandbox
    .requests()
    .filter((r) => r.method === "POST" && /\/messages$/.test(r.path) && r.responseStatus === 200)
    .map((r) => {
      const b = r.body as { to?: string; text?: { body?: string } };
      return { to: String(b.to ?? "").replace(/^\+/, ""), body: String(b.text?.body ?? "") };
    });
}

describe(`scale-out: 2 API + 2 worker processes, ${CONTACTS} contacts × ${PER_CONTACT} messages at once`, () => {
  it("handles every message exactly once, each contact's in order, with exactly one reply each; redeliveries to the other API process change nothing", async () => {
    const expected = CONTACTS * PER_CONTACT;
    const adminUrl = `http://127.0.0.1:${apiPorts[0]}`;
    const flow = {
      name: "scale-echo",
      triggers: [{ type: "pattern", pattern: "^n=1$" }],
      steps: [
        { id: "first", type: "ask", text: "n=1", input: { type: "text" }, save: "v", next: "again" },
        { id: "again", type: "ask", text: "{{v}}", input: { type: "text" }, save: "v", next: "again" },
      ],
    };
    const put = await fetch(`${adminUrl}/admin/flows/scale-echo`, {
      method: "PUT",
      headers: { authorization: `Bearer ${base.ADMIN_API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(flow),
    });
    expect(put.status).toBe(201);
    await new Promise((r) => setTimeout(r, 2_200)); // the worker processes' live-flow cache (2 s)
    for (const port of apiPorts) expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

    // --- the load: 1,000 contacts at once; each chain of POSTs carries 50 contacts, one message each per POST, and
    // sends its next POST when Meta would: after the previous one was acknowledged
    const numbers = Array.from({ length: CONTACTS }, (_, i) => contactNumber(i));
    const chunks: string[][] = [];
    for (let i = 0; i < numbers.length; i += BATCH) chunks.push(numbers.slice(i, i + BATCH));
    const injected: string[] = [];
    const firstAttempt: Record<string, number> = {};
    const cpuBefore = procs.map(cpuSeconds);
    const t0 = Date.now();
    await Promise.all(
      chunks.map(async (chunk) => {
        for (let k = 1; k <= PER_CONTACT; k++) {
          const { wamids, status } = await sandbox.injectBatch(chunk.map((from) => ({ from, text: `n=${k}`, profileName: "Scale" })));
          firstAttempt[status] = (firstAttempt[status] ?? 0) + 1;
          injected.push(...wamids);
        }
      }),
    );
    const ingestedMs = Date.now() - t0;
    expect(firstAttempt).toEqual({ 200: expected / BATCH });

    const qs = queues();
    try {
      await waitFor(async () => {
        const c = await counts();
        return c.inbound >= expected && c.outboundSent >= expected && sends().length >= expected;
      }, 240_000, 250);
      const handledMs = Date.now() - t0;
      const cpu = procs.map((p, i) => cpuSeconds(p) - cpuBefore[i]!);
      await lb.settle();
      await waitFor(() => queuesIdle(qs), 60_000, 200);

      // --- Meta redelivers a sample again, now that every job is gone: to the API process that did not take it first
      const messagePosts = sandbox.webhooks().filter((w) => w.kind === "message" && w.attempt === 1);
      const sample = messagePosts.filter((_, i) => i % Math.max(1, Math.floor(messagePosts.length / LATE_REDELIVERIES)) === 0).slice(0, LATE_REDELIVERIES);
      let lateRedelivered = 0;
      for (const w of sample) {
        const body = Buffer.from(w.body);
        const first = lb.firstBackend.get(createHash("sha256").update(body).digest("hex")) ?? 0;
        expect(await lb.forward((first + 1) % 2, body, w.signature)).toBe(200);
        lateRedelivered += (JSON.parse(w.body) as { entry: { changes: { value: { messages?: unknown[] } }[] }[] }).entry[0]!.changes[0]!.value.messages!.length;
      }
      await new Promise((r) => setTimeout(r, 500));
      await waitFor(() => queuesIdle(qs), 60_000, 200);
      await new Promise((r) => setTimeout(r, 1_000)); // anything a duplicate would have sent has had time to go out

      // --- every inbound wamid stored exactly once
      const stored = await pg.query<{ wamid: string; n: string }>(`SELECT wamid, count(*) AS n FROM messages WHERE direction = 'inbound' GROUP BY wamid`);
      const storedSet = new Set(stored.rows.map((r) => r.wamid));
      const missing = injected.filter((w) => !storedSet.has(w));
      const storedTwice = stored.rows.filter((r) => Number(r.n) > 1).length;

      // --- order per contact: inbound rows by seq (the order they were handled in, under the contact's lock), the
      // outbox rows by seq, and the replies as the sandbox (Meta) received them
      const want = Array.from({ length: PER_CONTACT }, (_, k) => `n=${k + 1}`);
      const perContact = await pg.query<{ wa_id: string; inbound: string[]; outbound: string[] }>(
        `SELECT c.wa_id,
                array_agg(m.payload->'text'->>'body' ORDER BY m.seq) FILTER (WHERE m.direction = 'inbound') AS inbound,
                array_agg(m.payload->'text'->>'body' ORDER BY m.seq) FILTER (WHERE m.direction = 'outbound') AS outbound
           FROM messages m JOIN contacts c ON c.id = m.contact_id GROUP BY c.wa_id`,
      );
      const same = (a: string[] | null, b: string[]) => a !== null && a.length === b.length && a.every((x, i) => x === b[i]);
      const inboundOutOfOrder = perContact.rows.filter((r) => !same(r.inbound, want)).length;
      const outboxOutOfOrder = perContact.rows.filter((r) => !same(r.outbound, want)).length;

      const all = sends();
      const atMeta = new Map<string, string[]>();
      for (const s of all) atMeta.set(s.to, [...(atMeta.get(s.to) ?? []), s.body]);
      const repliesOutOfOrder = numbers.filter((n) => !same(atMeta.get(n) ?? null, want)).length;
      const byContent = new Map<string, number>();
      for (const s of all) byContent.set(`${s.to}|${s.body}`, (byContent.get(`${s.to}|${s.body}`) ?? 0) + 1);
      const duplicateReplies = [...byContent.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0);

      // --- a reply may repeat only where a send's outcome was unknown: count those from the SendAttempt rows
      const attempts = await pg.query<{ unknown: string; repeated: string; total: string }>(
        `SELECT count(*) FILTER (WHERE outcome::text IN ('unknown', 'pending')) AS unknown,
                count(*) AS total,
                (SELECT count(*) FROM (SELECT message_id FROM send_attempts GROUP BY message_id HAVING count(*) > 1) x) AS repeated
           FROM send_attempts`,
      );
      const unknownOutcome = Number(attempts.rows[0]!.unknown);
      const final = await counts();
      const processErrors = procs.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`));
      const statusWebhooks = sandbox.webhooks().filter((w) => w.kind === "status").length;

      const figures = {
        apiProcesses: 2,
        workerProcesses: 2,
        contacts: CONTACTS,
        messagesPerContact: PER_CONTACT,
        sent: expected,
        webhookPosts: expected / BATCH,
        redeliveredPostsDuringLoad: lb.redeliveredDuringLoad,
        redeliveredMessagesAfterwards: lateRedelivered,
        handled: final.inbound,
        lost: missing.length,
        storedTwice,
        outOfOrder: inboundOutOfOrder,
        outboxOutOfOrder,
        replies: all.length,
        repliesOutOfOrder,
        duplicateReplies,
        repeatedUnknownOutcome: duplicateReplies,
        unknownOutcome,
        sendAttempts: Number(attempts.rows[0]!.total),
        statusWebhooks,
        alreadyClaimedWhenHandled: procs.reduce((n, p) => n + p.duplicatesSeen, 0),
        cpuSecondsApis: Math.round((cpu[0]! + cpu[1]!) * 10) / 10,
        cpuSecondsWorkers: Math.round((cpu[2]! + cpu[3]!) * 10) / 10,
        cpuMsPerMessage: Math.round((cpu.reduce((a, b) => a + b, 0) / expected) * 10_000) / 10,
        ingestSeconds: Math.round(ingestedMs / 100) / 10,
        handledAndRepliedSeconds: Math.round(handledMs / 100) / 10,
        throughputPerSecond: Math.round(expected / (handledMs / 1000)),
      };
      // eslint-disable-next-line no-console
      console.log(JSON.stringify(figures));
      recordScenario({
        id: "S1-two-api-two-workers",
        title: "Two API and two worker processes, 1,000 contacts × 10 messages at once",
        section: "scale",
        figures,
        notes: [
          `Two \`src/main/api.ts\` and two \`src/main/worker.ts\` processes on one PostgreSQL and one Redis (2 cores shared with the sandbox and the test), queue prefix \`${"{…}"}\` (a Redis Cluster hash tag). The sandbox's webhooks go through a round-robin load balancer, so a contact's consecutive messages reach different API processes; ${CONTACTS} contacts send ${PER_CONTACT} messages each, in POSTs of ${BATCH} messages (one per contact), all contacts at once, each contact's next POST after the previous one's 200. No status webhooks are sent back in this run (they would double the webhook traffic on this machine; the status path has its own tests).`,
          `The bot runs a flow published through the admin API that answers \`n=1\` and then echoes each message as its next question, so a reply names the message it answers. Checked from PostgreSQL (every wamid stored once; per contact, inbound and outbox rows by \`seq\`) and from the sandbox (per contact, the replies in the order Meta received them; duplicates by content). Every ${REDELIVER_EVERY}th POST was delivered a second time to the other API process while the load ran, and ${LATE_REDELIVERIES} POSTs once more after everything was handled: nothing was handled or answered twice.`,
        ],
      });

      expect(processErrors).toEqual([]);
      expect(missing).toEqual([]);
      expect(storedTwice).toBe(0);
      expect(final.inbound).toBe(expected);
      expect(final.outbound).toBe(expected);
      expect(inboundOutOfOrder).toBe(0);
      expect(outboxOutOfOrder).toBe(0);
      expect(repliesOutOfOrder).toBe(0);
      expect(all.length).toBe(expected);
      expect(duplicateReplies).toBe(0);
      expect(unknownOutcome).toBe(0);
      expect(lb.statuses).toEqual({ 200: expect.any(Number) });
    } finally {
      for (const q of qs) {
        await q.close();
        await (await q.client).quit();
      }
    }
  });
});
