import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { createSandbox, type Sandbox, type SandboxOptions } from "../../src/sandbox/sandbox";

/** Values from Meta's own examples (../shared/docs/cloud-api.md §2-3), so bot and sandbox cannot share a mistake. */
export const APP_SECRET = "sandbox-test-app-secret";
export const PHONE = { phoneNumberId: "106540352242922", displayPhoneNumber: "15550783881", accessToken: "EAAGsandboxTokenOne0123456789" };
export const PHONE2 = { phoneNumberId: "106540352242923", displayPhoneNumber: "15550783882", accessToken: "EAAGsandboxTokenTwo0123456789" };
export const CUSTOMER = "+16505551234";
export const BSUID = "US.13491208655302741918";

/** The contract's OTP send ("What goes to the Cloud API", ../shared/docs/contract.md). */
export function otpTemplate(to = "+14155550123", code = "123456"): Record<string, unknown> {
  return {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to,
    type: "template",
    template: {
      name: "verification_code",
      language: { code: "en_US" },
      components: [
        { type: "body", parameters: [{ type: "text", text: code }] },
        { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: code }] },
      ],
    },
  };
}

export function textMessage(to: string, body: string): Record<string, unknown> {
  return { messaging_product: "whatsapp", recipient_type: "individual", to, type: "text", text: { preview_url: false, body } };
}

export interface Received {
  raw: Buffer;
  headers: IncomingHttpHeaders;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  status: number;
}

/** A stand-in for the bot's POST /webhook: keeps the raw bytes, answers what `respond` says (200 by default). */
export async function startReceiver(): Promise<{
  url: string;
  received: Received[];
  respond: (fn: (n: number, r: Received) => number) => void;
  statuses: () => any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  waitFor: <T>(fn: () => T | undefined | false, timeoutMs?: number) => Promise<T>;
  close: () => Promise<void>;
}> {
  const received: Received[] = [];
  let responder: (n: number, r: Received) => number = () => 200;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const r: Received = { raw, headers: req.headers, json: JSON.parse(raw.toString("utf8")), status: 0 };
      r.status = responder(received.length + 1, r);
      received.push(r);
      res.statusCode = r.status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const waitFor = async <T>(fn: () => T | undefined | false, timeoutMs = 3000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error("waitFor: timed out");
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    received,
    respond: (fn) => {
      responder = fn;
    },
    statuses: () => received.flatMap((r) => r.json.entry.flatMap((e: any) => e.changes.flatMap((c: any) => c.value.statuses ?? []))), // eslint-disable-line @typescript-eslint/no-explicit-any
    waitFor,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/** A sandbox posting to a fresh receiver; Graph calls go through supertest. */
export async function setup(overrides: Partial<SandboxOptions> = {}): Promise<{
  sandbox: Sandbox;
  receiver: Receiver;
  send: (body: unknown, opts?: { token?: string | null; phoneNumberId?: string; version?: string }) => request.Test;
  close: () => Promise<void>;
}> {
  const receiver = await startReceiver();
  const sandbox = createSandbox({
    appSecret: APP_SECRET,
    webhookUrl: receiver.url,
    phoneNumbers: [PHONE, PHONE2],
    webhookRetry: { attempts: 3, baseDelayMs: 20 },
    ...overrides,
  });
  const send = (body: unknown, opts: { token?: string | null; phoneNumberId?: string; version?: string } = {}) => {
    const req = request(sandbox.app)
      .post(`/${opts.version ?? "v23.0"}/${opts.phoneNumberId ?? PHONE.phoneNumberId}/messages`)
      .set("content-type", "application/json");
    const token = opts.token === undefined ? PHONE.accessToken : opts.token;
    if (token !== null) req.set("authorization", `Bearer ${token}`);
    return req.send(typeof body === "string" ? body : JSON.stringify(body));
  };
  return {
    sandbox,
    receiver,
    send,
    close: async () => {
      await sandbox.close();
      await receiver.close();
    },
  };
}
