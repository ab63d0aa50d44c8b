// The webhook load generator, its own process (plain JavaScript, nothing loaded but node:http and node:crypto, so it
// takes as little of the machine's two cores as it can). Posts signed, unique WhatsApp webhooks over keep-alive
// connections, as Meta does, and prints one JSON line with the outcome.
//
//   closed loop: `connections` loops, each posting the next webhook as soon as the previous is answered
//   open loop:   `rate` webhooks per second on a fixed schedule whatever the answers (latency counts from the
//                scheduled time, so a slow server is not hidden by waiting for it: no coordinated omission)
//
// Input: the JSON in argv[2]: { url, secret, phoneNumberId, connections, seconds, warmupSeconds, rate?, mix }.
// mix "messages": every webhook a customer's text; "traffic": Meta's mix at 1,000 sends/s, about 10 status
// webhooks (sent, delivered, read) for each customer message.
import http from "node:http";
import { createHmac, randomBytes } from "node:crypto";

const o = JSON.parse(process.argv[2]);
const target = new URL(o.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections, maxFreeSockets: o.connections });
const run = randomBytes(6).toString("hex");
const STATUSES = ["sent", "delivered", "read"];
let seq = 0;

function body(i) {
  const n = seq++;
  const ts = Math.floor(Date.now() / 1000);
  const from = `1415555${String(1000 + (n % 9000))}`;
  const meta = `"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"${o.phoneNumberId}"}`;
  if (o.mix === "traffic" && n % 11 !== 0) {
    const status = STATUSES[n % 3];
    return `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{${meta},"statuses":[{"id":"wamid.out${run}${n}","status":"${status}","timestamp":"${ts}","recipient_id":"${from}","conversation":{"id":"c${run}${n % 5000}","origin":{"type":"service"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"service"}}]}}]}]}`;
  }
  return `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{${meta},"contacts":[{"profile":{"name":"Bench"},"wa_id":"${from}"}],"messages":[{"from":"${from}","id":"wamid.in${run}${n}","timestamp":"${ts}","type":"text","text":{"body":"hello ${i}"}}]}}]}]}`;
}

function post() {
  const raw = body(seq);
  const sig = `sha256=${createHmac("sha256", o.secret).update(raw).digest("hex")}`;
  return new Promise((resolve) => {
    const req = http.request(
      { agent, host: target.hostname, port: target.port, path: target.pathname, method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(raw), "x-hub-signature-256": sig } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", () => resolve(0));
      },
    );
    req.on("error", () => resolve(0));
    req.end(raw);
  });
}

const latencies = [];
const codes = {};
let recording = false;
let inFlightMax = 0;
let inFlight = 0;
const count = (status, ms) => {
  if (!recording) return;
  latencies.push(ms);
  codes[status] = (codes[status] ?? 0) + 1;
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function closedLoop(until) {
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const status = await post();
        count(status, performance.now() - t0);
      }
    }),
  );
}

async function openLoop(until) {
  const start = performance.now();
  let sent = 0;
  const pending = new Set();
  while (performance.now() < until) {
    const due = Math.floor(((performance.now() - start) * o.rate) / 1000);
    for (; sent < due; sent++) {
      const scheduled = start + (sent * 1000) / o.rate;
      inFlight++;
      inFlightMax = Math.max(inFlightMax, inFlight);
      const p = post().then((status) => {
        inFlight--;
        count(status, performance.now() - scheduled);
        pending.delete(p);
      });
      pending.add(p);
    }
    await sleep(1);
  }
  await Promise.all(pending);
}

const loop = o.rate ? openLoop : closedLoop;
await loop(performance.now() + (o.warmupSeconds ?? 1) * 1000);
recording = true;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await loop(t0 + o.seconds * 1000);
const elapsed = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
latencies.sort((a, b) => a - b);
const q = (p) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 100) / 100 : null);
const ok = codes[200] ?? 0;
process.stdout.write(
  JSON.stringify({
    requests: latencies.length,
    ok,
    perSecond: Math.round((ok / elapsed) * 10) / 10,
    codes,
    elapsed: Math.round(elapsed * 100) / 100,
    latencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) },
    loadgenCpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / (elapsed * 1000)) * 1000) / 10,
    maxRssMiB: Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10,
    ...(o.rate ? { targetRate: o.rate, maxInFlight: inFlightMax } : { connections: o.connections }),
  }) + "\n",
);
agent.destroy();
process.exit(0);
