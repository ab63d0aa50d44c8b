import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy the test controls, between a bot process and PostgreSQL (127.0.0.1:5432): `cut()` destroys every
 * open connection and resets new ones at once (PostgreSQL unreachable), `garbage()` accepts and answers junk (not
 * PostgreSQL or Redis at all), `restore()` lets them through again. The
 * machine's PostgreSQL itself is never touched.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private down = false;
  private junk = false;
  private stalled = false;
  /** connections reset while cut */
  refused = 0;
  /** connections destroyed by cut() */
  severed = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = createServer((client) => {
      const p = proxy!;
      if (p.down) {
        p.refused++;
        client.resetAndDestroy();
        return;
      }
      if (p.stalled) {
        // accepted, then silence: no answer, no reset (a host that went away behind a firewall)
        p.sockets.add(client);
        client.on("error", () => undefined);
        client.on("close", () => p.sockets.delete(client));
        return;
      }
      if (p.junk) {
        // an endpoint that is not what the URL says: it accepts, then answers anything with garbage
        p.sockets.add(client);
        client.on("error", () => undefined);
        client.on("close", () => p.sockets.delete(client));
        client.write("\x00\xffgarbage, not the protocol you speak\r\n");
        client.on("data", () => client.write("HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff"));
        return;
      }
      const upstream = connect(target.port, target.host);
      for (const s of [client, upstream]) {
        p.sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => {
          p.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** The same database URL, through this proxy. */
  url(databaseUrl: string): string {
    const u = new URL(databaseUrl);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  cut(): void {
    this.down = true;
    for (const s of this.sockets) {
      this.severed++;
      s.resetAndDestroy();
    }
    this.sockets.clear();
  }

  restore(): void {
    this.down = false;
    if (this.junk) {
      // the junk-answering connections end: the client connects again, through to the real service
      for (const s of this.sockets) s.destroy();
      this.sockets.clear();
    }
    this.junk = false;
  }

  /** Nothing goes through any more, and nothing is reset either: open connections and new ones hang (until close()). */
  stall(): void {
    this.stalled = true;
    for (const s of this.sockets) {
      s.unpipe();
      s.pause();
    }
  }

  /** New connections are accepted and answered with garbage (open ones are cut): the wrong service at the address. */
  garbage(): void {
    this.cut();
    this.down = false;
    this.junk = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** host and port of a PostgreSQL URL */
export function pgTarget(databaseUrl: string): { host: string; port: number } {
  const u = new URL(databaseUrl);
  return { host: u.hostname || "127.0.0.1", port: Number(u.port || 5432) };
}
