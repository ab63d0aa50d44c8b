import { Client } from "pg";
import request from "supertest";
import { BackgroundTasks } from "../../src/shared/background";
import { startTestSystem } from "../helpers/system";

/** A promise settled from outside. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
const tick = () => new Promise((r) => setImmediate(r));

describe("BackgroundTasks", () => {
  it("drain waits for tracked work, including work tracked while it waits, and ignores failures", async () => {
    const bg = new BackgroundTasks();
    const first = deferred();
    const failing = deferred();
    const later = deferred();
    bg.track(first.promise);
    bg.track(failing.promise).catch(() => undefined);
    let drained = false;
    const draining = bg.drain().then(() => (drained = true));
    await tick();
    expect(drained).toBe(false);
    first.resolve();
    failing.reject(new Error("the caller's to handle"));
    bg.track(later.promise); // e.g. a deferred contact write queued behind one that just finished
    await tick();
    expect(drained).toBe(false);
    expect(bg.size).toBe(1);
    later.resolve();
    await draining;
    expect(drained).toBe(true);
    expect(bg.size).toBe(0);
  });

  it("run starts work before a drain and skips it after", async () => {
    const bg = new BackgroundTasks();
    let started = 0;
    const before = bg.run(async () => ++started);
    await bg.drain();
    expect(await before).toBe(1);
    expect(bg.run(async () => ++started)).toBeUndefined();
    expect(started).toBe(1);
  });
});

/**
 * A tenant created through the admin API gets its built-in flows in the background (off the request). A shutdown
 * right after must wait for that work: otherwise the flows are missing, and the Prisma transaction left open at
 * `$disconnect` keeps its connection idle after BEGIN, so the pool never ends and the close hangs.
 */
it("a shutdown right after a tenant is created waits for its built-in flows and leaves no connection behind", async () => {
  const sys = await startTestSystem({ keepDatabase: true });
  const db = sys.database;
  let closed = false;
  try {
    const phoneNumberId = "4" + String(Date.now()).slice(-9);
    const res = await request(sys.http.url)
      .post("/admin/tenants")
      .set({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` })
      .send({ phoneNumberId, displayPhoneNumber: `1555${phoneNumberId.slice(-7)}`, accessToken: `EAAG-token-${phoneNumberId}` });
    expect(res.status).toBe(201);
    const expected = await sys.core.prisma.flow.count({ where: { tenantId: sys.tenantId } });
    expect(expected).toBeGreaterThan(0);
    await sys.close(); // at once: the background install is still running
    closed = true;
    expect(await db.activity!()).toEqual([]);
    // read directly: a restart would install the built-ins for every tenant again
    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    try {
      const r = await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM flows WHERE tenant_id = $1::uuid`, [res.body.id]);
      expect(r.rows[0]!.n).toBe(expected);
    } finally {
      await pg.end();
    }
  } finally {
    if (!closed) await sys.close();
    await db.drop();
  }
});
