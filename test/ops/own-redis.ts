import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import IORedis from "ioredis";

/** A free TCP port on 127.0.0.1 (asked of the OS, then released). */
export async function sparePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A Redis of the test's own (`redis-server` as a child process, nothing persisted), so a test may stop it without
 * touching the machine's shared Redis. `stop()` and `start()` may be repeated; `stop()` ends only this child.
 * With `persistDir`, it persists as production must (append-only file, fsync every second) in that directory, so
 * what it acknowledged survives `stop()` + `start()`.
 */
export class OwnRedis {
  private child: ChildProcess | null = null;
  constructor(
    readonly port: number,
    readonly opts: { persistDir?: string } = {},
  ) {}

  static async start(opts: { persistDir?: string } = {}): Promise<OwnRedis> {
    const r = new OwnRedis(await sparePort(), opts);
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.child) return;
    const persistence = this.opts.persistDir
      ? ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", this.opts.persistDir, "--maxmemory-policy", "noeviction"]
      : ["--appendonly", "no"];
    const child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", ...persistence], { stdio: "ignore" });
    this.child = child;
    child.once("exit", () => {
      if (this.child === child) this.child = null;
    });
    // ready when it answers PING
    const until = Date.now() + 10_000;
    for (;;) {
      const probe = new IORedis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
      try {
        await probe.connect();
        if ((await probe.ping()) === "PONG") return;
      } catch {
        if (Date.now() > until) throw new Error(`redis-server on port ${this.port} did not start`);
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        probe.disconnect();
      }
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
    this.child = null;
  }
}
