import type { Worker } from "bullmq";
import { setCallback } from "../../src/events/publisher";
import type { RecordingCodeSender } from "../../src/providers/sandbox/recording-sender";
import { Receiver } from "../events/receiver";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * The whole bot with the Cloud API sandbox as Meta, sandbox SMS and voice recorders, and a business callback
 * endpoint recording every event. Account jobs of the status worker are recorded with their results.
 */
export interface TemplatesSystem {
  sys: TestSystem;
  receiver: Receiver;
  sms: RecordingCodeSender;
  voice: RecordingCodeSender;
  /** results of the status worker's "account" jobs, in completion order; failures as "failed:<message>" */
  accountJobs: string[];
  admin: { Authorization: string };
  /** the sandbox control endpoint: set a template's status (and send the webhook unless webhook: false) */
  setTemplateStatus(body: Record<string, unknown>): Promise<{ status: number; body: any }>;
  /** events of one type the callback received, parsed */
  events(type: string): any[];
  /** makes the default tenant learn its WABA id the ordinary way: a customer writes, the webhook names the WABA */
  learnWaba(from: string): Promise<string>;
  setSettings(section: string, values: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

export async function startTemplatesSystem(env: Record<string, string> = {}): Promise<TemplatesSystem> {
  const receiver = new Receiver();
  await receiver.listen();
  // events go to a local receiver over http: development mode, opted into explicitly
  const sys = await startTestSystem({ env: { SMS_PROVIDER: "sandbox", VOICE_PROVIDER: "sandbox", OUTBOUND_RECIPIENT_GAP_MS: "0", NODE_ENV: "development", ...env } });
  await setCallback(sys.core.prisma, sys.core.keyring, sys.tenantId, `${receiver.url}/hooks`, { dev: true });
  const accountJobs: string[] = [];
  const statusWorker = sys.workers!.workers.find((w: Worker) => w.name === "statuses")!;
  statusWorker.on("completed", (job, result) => {
    if (job.name === "account") accountJobs.push(String(result));
  });
  statusWorker.on("failed", (job, err) => {
    if (job?.name === "account") accountJobs.push(`failed:${err.message}`);
  });
  const sms = sys.core.senders.sms as RecordingCodeSender;
  const voice = sys.core.senders.voice as RecordingCodeSender;
  return {
    sys, receiver, sms, voice, accountJobs,
    admin: { Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` },
    async setTemplateStatus(body) {
      const res = await fetch(`${sys.sandboxUrl}/sandbox/api/templates/status`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, body: await res.json() };
    },
    events: (type) => receiver.at("/hooks").map((r) => JSON.parse(r.raw)).filter((e) => e.type === type),
    async learnWaba(from) {
      await sys.sandbox.injectInbound({ from, text: "hello" });
      const t = await waitFor(async () => {
        const row = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
        return row.wabaId;
      });
      return t;
    },
    async setSettings(section, values) {
      const t = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
      const settings = (t.settings ?? {}) as Record<string, Record<string, unknown>>;
      await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { settings: JSON.parse(JSON.stringify({ ...settings, [section]: { ...(settings[section] ?? {}), ...values } })) } });
    },
    async close() {
      await sys.close();
      await receiver.close();
    },
  };
}
