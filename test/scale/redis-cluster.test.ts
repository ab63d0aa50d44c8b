import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Queue, QueueKeys } from "bullmq";
import IORedis, { type Redis } from "ioredis";
import request from "supertest";
import { createIngest } from "../../src/ingest/ingest";
import { signBody } from "../../src/ingest/verify-signature";
import { Mailboxes } from "../../src/ingest/mailbox";
import { createLogger } from "../../src/observability/logger";
import { QUEUES, jobIds, type EncryptedJob } from "../../src/queues/jobs";
import { Keyring } from "../../src/shared/crypto";
import { contact, envelope, messages } from "../helpers/payloads";
import { testConfig } from "../helpers/env";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { sparePort } from "../ops/own-redis";

/**
 * Redis Cluster safety (issue 8, "Scale-out"; docs/scaling.md). On a cluster every multi-key operation (a MULTI, a
 * Lua script's KEYS, MGET) must name keys of one hash slot, or Redis answers CROSSSLOT. BullMQ's scripts touch
 * several keys of a queue at once, the webhook writes several contacts' mailboxes in one MULTI, the heartbeat writes
 * two keys in one MULTI, the daily code cap runs a two-key script. With `QUEUE_PREFIX={name}` (a hash tag) every key
 * of the deployment hashes to the slot of `name`.
 *
 * 1. Slots computed here (CRC16/XMODEM of the hash tag, mod 16384) for every key pattern the code produces.
 * 2. A real Redis in cluster mode (one node owning all 16,384 slots: it enforces CROSSSLOT like a bigger cluster):
 *    without a hash tag the webhook's MULTI is refused (the control), with one it is taken.
 * 3. The whole bot on that cluster node with a hash-tagged prefix: webhook, inbound/outbound workers, a verification
 *    (limits, the daily cap script, the OTP queue), heartbeats and GET /admin/workers, without a CROSSSLOT anywhere.
 */
jest.setTimeout(60_000);

// --- 1. slots ---------------------------------------------------------------------------------------------------

/** CRC16/XMODEM (polynomial 0x1021, init 0), the checksum Redis Cluster uses for key slots. */
function crc16(buf: Buffer): number {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The slot of a key: of its first non-empty `{…}` hash tag if it has one, else of the whole key (Redis's rule). */
function keySlot(key: string): number {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key)) % 16384;
}

const keyring = Keyring.fromBase64(Buffer.alloc(32, 7).toString("base64"));
const PNID = "106540352242922";

/** Every key the bot writes, by owner, for one prefix: as the code builds them (or as it spells them). */
function keyPatterns(prefix: string): Record<string, string[]> {
  const bull = (name: string) => {
    const keys = Object.values(new QueueKeys(prefix).getKeys(name));
    const q = `${prefix}:${name}`;
    const job = name === "inbound" ? jobIds.inbound(PNID, "wamid.A") : jobIds.outbound("7c1b7a5e-0000-4000-8000-000000000001");
    return [...keys, `${q}:${job}`, `${q}:${job}:lock`, `${q}:${job}:logs`, `${q}:repeat:expire-sweep`];
  };
  const mailboxes = new Mailboxes({} as Redis, prefix, keyring);
  const tenant = "5b0e8c52-1f5a-4c1e-9d7e-6f0d1b2c3a4b";
  return {
    // BullMQ's scripts: every key of one queue at once
    ...Object.fromEntries(Object.values(QUEUES).map((n) => [`bullmq:${n}`, bull(n)])),
    // the webhook's MULTI: the mailboxes of every contact in the POST
    "ingest MULTI (mailboxes)": ["15550001111", "15550002222", "447700900123"].map((c) => mailboxes.key(PNID, c)),
    // heartbeat MULTI and the MGET of GET /admin/workers (src/observability/worker-health.ts)
    "heartbeat MULTI / MGET": [`${prefix}:heartbeat:workers`, `${prefix}:heartbeat:worker:host:1:abc`, `${prefix}:heartbeat:worker:host:2:def`],
    // the daily cap's two-key script (src/limits/daily-codes.ts)
    "daily codes script": [`${prefix}:codes-day:{${tenant}}:2026-01-01`, `${prefix}:codes-day:{${tenant}}:2026-01-01:announced`],
  };
}

/** Single-key operations (one key each, any slot is fine); listed so a new multi-key use is a conscious change. */
const SINGLE_KEY = [
  "<prefix>:rl:<limit>:<key> (rate-limiter-flexible, OTP limits and outbound rate)",
  "<prefix>:out:last:<contact> and <prefix>:out:lock:<message> (outbound pacing, send lock + release script)",
  "<prefix>:fallback-spend:<tenant>:<day> (one-key script)",
  "<prefix>:console:session:<id>, API-key cache, messaging-limit snapshot",
];

describe("Redis Cluster key slots", () => {
  it("computes Redis's slots (known values)", () => {
    expect(crc16(Buffer.from("123456789"))).toBe(0x31c3);
    expect(keySlot("foo")).toBe(12182); // CLUSTER KEYSLOT foo
    expect(keySlot("{user1000}.following")).toBe(keySlot("{user1000}.followers"));
    expect(keySlot("foo{}{bar}")).toBe(keySlot("foo{}{bar}")); // an empty tag: the whole key
    expect(keySlot("{}x")).not.toBe(keySlot("x"));
  });

  it("with a hash-tagged QUEUE_PREFIX, every key of the deployment is in one slot", () => {
    const groups = keyPatterns("{wabot}");
    const slots = new Set(Object.values(groups).flat().map(keySlot));
    expect([...slots]).toEqual([keySlot("wabot")]);
    expect(SINGLE_KEY.length).toBeGreaterThan(0);
  });

  it("without one (the default `wabot`), the multi-key groups span slots: fine on one Redis, CROSSSLOT on a cluster", () => {
    const groups = keyPatterns("wabot");
    const spread = Object.entries(groups).filter(([, keys]) => new Set(keys.map(keySlot)).size > 1).map(([name]) => name);
    // the daily cap tags its keys by tenant itself; everything else relies on the prefix
    expect(spread).toEqual(expect.arrayContaining(["bullmq:inbound", "bullmq:outbound", "ingest MULTI (mailboxes)", "heartbeat MULTI / MGET"]));
    expect(spread).not.toContain("daily codes script");
  });
});

// --- 2 and 3: a real Redis in cluster mode ---------------------------------------------------------------------------

let node: { port: number; url: string; child: ChildProcess; dir: string };

async function startClusterNode() {
  const port = await sparePort();
  const dir = mkdtempSync(path.join(tmpdir(), "wabot-cluster-"));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, "nodes.conf"), "--dir", dir],
    { stdio: "ignore" },
  );
  const url = `redis://127.0.0.1:${port}`;
  const admin = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  await waitFor(async () => {
    try {
      if (admin.status !== "ready") await admin.connect();
      return (await admin.ping()) === "PONG";
    } catch {
      return false;
    }
  }, 10_000, 50);
  await admin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
  await waitFor(async () => String(await admin.call("CLUSTER", "INFO")).includes("cluster_state:ok"), 15_000, 100);
  admin.disconnect();
  return { port, url, child, dir };
}

beforeAll(async () => {
  node = await startClusterNode();
});

afterAll(async () => {
  if (node) {
    await new Promise<void>((resolve) => {
      if (node.child.exitCode !== null) return resolve();
      node.child.once("exit", () => resolve());
      node.child.kill("SIGTERM");
    });
    rmSync(node.dir, { recursive: true, force: true });
  }
});

describe("on a Redis in cluster mode", () => {
  async function ingestOnce(prefix: string) {
    const redis = new IORedis(node.url, { maxRetriesPerRequest: 1, enableOfflineQueue: true });
    const inbound = new Queue<EncryptedJob>(QUEUES.inbound, { connection: redis, prefix });
    const statuses = new Queue<EncryptedJob>(QUEUES.statuses, { connection: redis, prefix });
    const logger = createLogger({ level: "silent" });
    const ingest = createIngest({ appSecret: "s3cret", keyring, redis, mailboxes: new Mailboxes(redis, prefix, keyring), inboundQueue: inbound, statusQueue: statuses, logger });
    // one POST, two contacts: two mailboxes in the MULTI
    const body = JSON.stringify(envelope({ phoneNumberId: PNID, contacts: [contact("15550001111"), contact("15550002222")], messages: [messages.text("15550001111"), messages.text("15550002222")] }));
    try {
      await inbound.waitUntilReady();
      return await ingest(Buffer.from(body), signBody(body, "s3cret"));
    } finally {
      await inbound.close();
      await statuses.close();
      redis.disconnect();
    }
  }

  it("refuses the webhook's MULTI across contacts without a hash tag (the control), and takes it with one", async () => {
    const plain = await ingestOnce("tplain");
    expect(plain).toMatchObject({ kind: "enqueue_failed", error: expect.stringMatching(/CROSSSLOT/) });
    const tagged = await ingestOnce("{ttagged}");
    expect(tagged).toMatchObject({ kind: "accepted", messages: 2 });
  });

  describe("the whole bot with QUEUE_PREFIX={…}", () => {
    let sys: TestSystem;
    const logs: string[] = [];
    const prefix = `{${testConfig().QUEUE_PREFIX}}`;

    beforeAll(async () => {
      sys = await startTestSystem({ env: { REDIS_URL: node.url, QUEUE_PREFIX: prefix, LOG_LEVEL: "info", OUTBOUND_RECIPIENT_GAP_MS: "5" }, captureLogs: logs });
    });
    afterAll(async () => {
      await sys?.close();
    });

    it("answers messages from several contacts in one POST, sends and checks a code, beats and lists its workers: no CROSSSLOT", async () => {
      const contacts = ["15550003333", "15550004444", "15550005555"];
      const { status } = await sys.sandbox.injectBatch(contacts.map((from) => ({ from, text: "hello" })));
      expect(status).toBe(200);
      await waitFor(() => contacts.every((c) => sys.sandbox.conversation(c).some((m) => m.direction === "outbound")), 20_000);

      const admin = { Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` };
      const created = await request(sys.http.url).post("/v1/verifications").set(admin).send({ to: "+14155550123" });
      expect(created.body).toMatchObject({ status: "pending" });
      const code = await waitFor(() => latestCode(sys.sandbox, "14155550123"), 20_000);
      const checked = await request(sys.http.url).post("/v1/verifications/check").set(admin).send({ to: "+14155550123", code });
      expect(checked.body).toMatchObject({ status: "approved", valid: true });

      const workers = await request(sys.http.url).get("/admin/workers").set(admin);
      expect(workers.status).toBe(200);
      expect(workers.body.alive).toBe(1);

      // every key this deployment wrote is in the slot of its tag
      const redis = new IORedis(node.url);
      try {
        const keys = await redis.keys(`${prefix}*`);
        expect(keys.length).toBeGreaterThan(10);
        expect(new Set(keys.map(keySlot))).toEqual(new Set([keySlot(prefix)]));
        for (const k of keys.slice(0, 20)) expect(Number(await redis.call("CLUSTER", "KEYSLOT", k))).toBe(keySlot(k));
      } finally {
        redis.disconnect();
      }
      expect(logs.filter((l) => /CROSSSLOT|CLUSTERDOWN|MOVED/.test(l))).toEqual([]);
    });
  });
});
