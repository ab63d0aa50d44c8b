import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPrisma, type PrismaClient } from "../../src/db/prisma";
import { BUILTIN_FLOWS_DIR, installBuiltinFlows, loadBuiltinFlows } from "../../src/flows/builtin";
import { FlowStore } from "../../src/flows/flow-store";
import { validateFlow, type FlowDefinition } from "../../src/flows/schema";
import { ManualClock } from "../../src/shared/clock";
import { createTestDatabase } from "../helpers/db";

/** FlowStore and the built-in flows on real PostgreSQL. */
let db: { url: string; drop: () => Promise<void> };
let prisma: PrismaClient;
let tenantId: string;

function flow(doc: unknown): FlowDefinition {
  const r = validateFlow(doc);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.flow;
}
const ping = (text = "pong from a custom flow") =>
  flow({ name: "ping", triggers: [{ type: "keyword", keywords: ["ping-42"] }], steps: [{ id: "answer", type: "send", text }] });

beforeAll(async () => {
  db = await createTestDatabase();
  prisma = createPrisma(db.url, 5);
  const t = await prisma.tenant.create({ data: { name: "t", phoneNumberId: "1234567", displayPhoneNumber: "15550001111", accessTokenEnc: "x" } });
  tenantId = t.id;
});
afterAll(async () => {
  await prisma?.$disconnect();
  await db?.drop();
});

describe("FlowStore", () => {
  it("numbers versions from 1, keeps history, serves live definitions and older versions", async () => {
    const store = new FlowStore({ prisma });
    expect(await store.publish(tenantId, ping(), "test")).toEqual({ name: "ping", version: 1, created: true });
    const live1 = await store.liveDefinitions(tenantId);
    expect(live1.map((f) => [f.name, f.version])).toEqual([["ping", 1]]);
    expect(await store.publish(tenantId, ping("v2"), "test")).toEqual({ name: "ping", version: 2, created: false });
    // invalidated on publish in this process
    expect((await store.liveDefinitions(tenantId))[0]).toMatchObject({ version: 2, definition: { steps: [{ text: "v2" }] } });
    expect(await store.definitionAt(tenantId, "ping", 1)).toMatchObject({ steps: [{ text: "pong from a custom flow" }] });
    expect(await store.definitionAt(tenantId, "ping", 7)).toBeNull();
    expect(await store.rollback(tenantId, "ping", 1, "test")).toMatchObject({ version: 3 });
    expect((await store.versions(tenantId, "ping"))!.map((v) => v.version)).toEqual([3, 2, 1]);
    expect(await store.get(tenantId, "ping")).toMatchObject({ version: 3, definition: { steps: [{ text: "pong from a custom flow" }] } });
  });

  it("another process's cache follows within the TTL; a deleted flow ends its sessions (definitionAt → null)", async () => {
    const clock = new ManualClock();
    const a = new FlowStore({ prisma, clock });
    const b = new FlowStore({ prisma, clock });
    await a.publish(tenantId, flow({ name: "gone", steps: [{ id: "x", type: "end" }] }), "test");
    expect(await b.definitionAt(tenantId, "gone", 1)).not.toBeNull();
    expect(await a.delete(tenantId, "gone", "test")).toBe(true);
    expect(await a.definitionAt(tenantId, "gone", 1)).toBeNull();
    // b's live list is cached for 2 s of its clock: the other store's delete is not seen yet, then it is
    clock.advance(1_999);
    expect(await b.definitionAt(tenantId, "gone", 1)).not.toBeNull();
    clock.advance(1);
    expect(await b.definitionAt(tenantId, "gone", 1)).toBeNull();
    expect((await b.liveDefinitions(tenantId)).map((f) => f.name)).not.toContain("gone");
  });
});

describe("built-in flows", () => {
  it("the shipped files are valid: help answers help/ayuda/ajuda in three locales; the contract's ping is an example, not built in", () => {
    const loaded = loadBuiltinFlows();
    expect(loaded.errors).toEqual([]);
    const byName = new Map(loaded.files.map((f) => [f.flow.name, f.flow]));
    expect(byName.has("ping")).toBe(false); // a business publishing the contract's document gets version 1
    const example = loadBuiltinFlows(join(__dirname, "..", "..", "docs", "examples"));
    expect(example.files.map((f) => f.flow).filter((f) => f.name === "ping")).toMatchObject([{ name: "ping", triggers: [{ type: "keyword", keywords: ["ping-42"] }], steps: [{ id: "answer", type: "send", text: "pong from a custom flow" }] }]);
    const help = byName.get("help")!;
    expect(help.triggers[0]).toMatchObject({ type: "keyword", keywords: ["help", "ayuda", "ajuda"] });
    const text = (help.steps[0] as { text: Record<string, string> }).text;
    expect(Object.keys(text).sort()).toEqual(["en_US", "es", "pt_BR"]);
    expect(BUILTIN_FLOWS_DIR).toMatch(/flows$/);
  });

  it("installing is idempotent and never overwrites a flow the business published", async () => {
    const t2 = await prisma.tenant.create({ data: { name: "t2", phoneNumberId: "7654321", displayPhoneNumber: "15550002222", accessTokenEnc: "x" } });
    const store = new FlowStore({ prisma });
    const dir = mkdtempSync(join(tmpdir(), "flows-builtin-"));
    try {
      writeFileSync(join(dir, "ping.json"), JSON.stringify({ name: "ping", triggers: [{ type: "keyword", keywords: ["ping-42"] }], steps: [{ id: "answer", type: "send", text: "pong" }] }));
      writeFileSync(join(dir, "hello.yaml"), "name: hello\nsteps:\n  - id: hi\n    type: send\n    text: Hi\n");
      writeFileSync(join(dir, "broken.yml"), "name: broken\nsteps: []\n");
      writeFileSync(join(dir, "README.md"), "not a flow");
      const loaded = loadBuiltinFlows(dir);
      expect(loaded.files.map((f) => f.flow.name).sort()).toEqual(["hello", "ping"]);
      expect(loaded.errors).toEqual([expect.objectContaining({ file: join(dir, "broken.yml"), path: "steps" })]);

      const first = await installBuiltinFlows(store, t2.id, loaded);
      expect(first.installed.sort((x, y) => x.name.localeCompare(y.name))).toEqual([{ name: "hello", version: 1 }, { name: "ping", version: 1 }]);
      // twice: nothing new (also from a fresh load and another store, as at the next start)
      const again = await installBuiltinFlows(new FlowStore({ prisma }), t2.id, loadBuiltinFlows(dir));
      expect(again.installed).toEqual([]);
      expect(again.unchanged.sort()).toEqual(["hello", "ping"]);
      expect((await store.versions(t2.id, "ping"))!.length).toBe(1);
      expect((await store.list(t2.id)).map((f) => [f.name, f.source])).toEqual([["hello", "builtin"], ["ping", "builtin"]]);

      // a changed file publishes a new built-in version
      writeFileSync(join(dir, "hello.yaml"), "name: hello\nsteps:\n  - id: hi\n    type: send\n    text: Hi again\n");
      expect((await installBuiltinFlows(store, t2.id, loadBuiltinFlows(dir))).installed).toEqual([{ name: "hello", version: 2 }]);

      // the business publishes its own ping: the built-in one never overwrites it
      await store.publish(t2.id, ping("our own pong"), "api-key:x", "api");
      const third = await installBuiltinFlows(store, t2.id, loadBuiltinFlows(dir));
      expect(third.overridden).toEqual(["ping"]);
      expect(third.installed).toEqual([]);
      expect(await store.get(t2.id, "ping")).toMatchObject({ version: 2, definition: { steps: [{ text: "our own pong" }] } });

      // concurrent installs (processes starting together) publish each change once
      writeFileSync(join(dir, "hello.yaml"), "name: hello\nsteps:\n  - id: hi\n    type: send\n    text: Hi thrice\n");
      const flows = loadBuiltinFlows(dir);
      const results = await Promise.all([1, 2, 3].map(() => installBuiltinFlows(new FlowStore({ prisma }), t2.id, flows)));
      expect(results.flatMap((r) => r.installed)).toEqual([{ name: "hello", version: 3 }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
