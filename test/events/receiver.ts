import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  at: number;
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string };
/** per path: answers in order, the last one repeating; or a function of the request */
export type Script = Answer[] | ((req: Received, n: number) => Answer | Promise<Answer>);

/** A business's callback endpoint on an ephemeral loopback port: records every request, answers from a script. */
export class Receiver {
  readonly received: Received[] = [];
  private readonly scripts = new Map<string, Script>();
  private server: Server | null = null;
  url = "";

  async listen(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const path = (req.url ?? "/").split("?")[0]!;
        const rec: Received = { path, headers: req.headers, raw: Buffer.concat(chunks).toString("utf8"), at: Date.now() };
        this.received.push(rec);
        const n = this.at(path).length - 1;
        const script = this.scripts.get(path) ?? [{ status: 200 }];
        void Promise.resolve(typeof script === "function" ? script(rec, n) : script[Math.min(n, script.length - 1)]!).then((a) => {
          res.writeHead(a.status, { "content-type": "text/plain", ...(a.headers ?? {}) });
          res.end(a.body ?? "ok");
        });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  script(path: string, script: Script): string {
    this.scripts.set(path, script);
    return `${this.url}${path}`;
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
