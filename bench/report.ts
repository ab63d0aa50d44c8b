/**
 * The benchmark's report: the table printed by `npm run bench`, the chart (docs/images/bench.svg, hand-rolled SVG)
 * and the generated part of docs/benchmarks.md (between the `bench:start` / `bench:end` markers; the text around
 * them is written by hand). `npx tsx bench/report.ts [results.json]` rebuilds the chart and the doc from a results
 * file (default bench/results/latest.json) without running anything.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RoundTripResults } from "./round-trip-counts";

export interface Stats {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

/** What one load-generator run measured (bench/loadgen.mjs), as kept in the results */
export interface LoadFigures {
  perSecond: number;
  ok: number;
  requests: number;
  codes: Record<string, number>;
  latencyMs: Stats;
  loadgenCpuPercent: number;
}

interface LoadRow extends LoadFigures {
  serverCpuPercent: number;
}

export interface BenchResults {
  env: {
    date: string;
    node: string;
    cpus: string;
    memoryGiB: number;
    loadAverageAtStart: number[];
    secondsPerMeasurement: number;
    redis: Record<string, string>;
    postgres: string;
    config: Record<string, unknown>;
    processes: string;
    profiled: boolean;
  };
  ingest: {
    connections: number;
    closedLoop: (LoadRow & { id: string; label: string; peakRssMiB: number | null; cpuMsPerRequest?: number })[];
    ratios: Record<string, number>;
    metaRate: (LoadRow & { targetRate: number; mix: string }) | null;
  } | null;
  reply: {
    contacts: number;
    rates: { ratePerSecond: number; achievedPerSecond: number; messages: number; answered: number; unanswered: number; latencyMs: Stats; webhookAckMs?: Stats; botCpuPercent: number }[];
    workers: string;
  } | null;
  outbound: { runs: { limitPerSecond: number; achievedPerSecond: number; errorPercent: number; perSecond: number[]; messages: number; botCpuPercent: number }[]; note: string } | null;
  otp: { ratePerSecond: number; cyclesPerSecond: number; errors: number; cycleMs: Stats; createMs: Stats; checkMs: Stats; botCpuPercent: number; limits: string } | null;
  memory: { process: string; phase: string; peakRssMiB: number | null }[];
  /** PostgreSQL and Redis round trips per operation (bench/round-trip-counts.ts); absent in runs before 2026-12-08 */
  roundTrips?: RoundTripResults | null;
  wallSeconds: number;
}

/**
 * Redis commands of one reply end to end (returning contact) on 2026-12-08, before issue 16's refactor (its target:
 * "no more"), besides the workers' job fetches (BZPOPMIN wake-ups, moveToActive: their number is a race between a
 * worker's free slots, 16 to 18 of the 31 to 34 in all)
 */
export const REPLY_REDIS_COMMANDS_BEFORE = 15;

const ROUND_TRIP_ROWS = [
  ["replyReturningContact", "reply to a text, returning contact"],
  ["replyNewContact", "reply to a text, new contact"],
  ["otpCycle", "OTP cycle"],
  ["statusWebhook", "one status webhook (read)"],
] as const;

interface Target {
  name: string;
  goal: string;
  value: string;
  met: boolean | null;
}

const fmt = (n: number | null | undefined, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }));
const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "–" : `${Math.round(x * 100)}%`);

/** The issue's targets, each met or not, from one run's results. */
export function targets(r: BenchResults): Target[] {
  const out: Target[] = [];
  const ing = r.ingest;
  if (ing) {
    out.push({ name: "ingest vs bare node:http", goal: "≥ 40%", value: pct(ing.ratios.botVsBare), met: ing.ratios.botVsBare! >= 0.4 });
    out.push({ name: "ingest vs BuilderBot", goal: "≥ 100%", value: pct(ing.ratios.botVsBuilderBot), met: ing.ratios.botVsBuilderBot! >= 1 });
    const m = ing.metaRate;
    if (m) {
      const all200 = (m.codes["200"] ?? 0) === m.requests;
      out.push({ name: `ack p99 at ${fmt(m.targetRate)} webhooks/s`, goal: "< 50 ms, all 200", value: `${fmt(m.latencyMs.p99, 1)} ms at ${fmt(m.perSecond)}/s${all200 ? "" : ", not all 200"}`, met: (m.latencyMs.p99 ?? Infinity) < 50 && all200 && m.perSecond >= m.targetRate * 0.97 });
    }
  }
  const top = r.reply?.rates.find((x) => x.ratePerSecond === 500);
  if (top) out.push({ name: "reply p99 at 500 msg/s", goal: "< 100 ms", value: `${fmt(top.latencyMs.p99, 1)} ms${top.unanswered ? `, ${top.unanswered} unanswered` : ""}`, met: (top.latencyMs.p99 ?? Infinity) < 100 && top.unanswered === 0 });
  for (const o of r.outbound?.runs ?? []) {
    out.push({ name: `outbound at a ${fmt(o.limitPerSecond)}/s limit`, goal: o.limitPerSecond >= 1000 ? "≥ 1,000/s, within 5%" : "within 5%", value: `${fmt(o.achievedPerSecond, 1)}/s (${o.errorPercent > 0 ? "+" : ""}${fmt(o.errorPercent, 1)}%)`, met: Math.abs(o.errorPercent) <= 5 });
  }
  if (r.roundTrips) {
    const x = r.roundTrips.replyReturningContact;
    out.push({ name: "PostgreSQL round trips per reply, end to end", goal: "≤ 5", value: String(x.pgRoundTrips), met: x.pgRoundTrips <= 5 });
    out.push({ name: "Redis commands per reply besides job fetches", goal: `≤ ${REPLY_REDIS_COMMANDS_BEFORE} (before issue 16)`, value: `${x.redisCommandsBesidesFetches} (${x.redisCommands} in all)`, met: x.redisCommandsBesidesFetches <= REPLY_REDIS_COMMANDS_BEFORE });
  }
  if (r.otp) out.push({ name: `OTP check p99 at ${r.otp.ratePerSecond} cycles/s`, goal: "< 20 ms", value: `${fmt(r.otp.checkMs.p99, 1)} ms${r.otp.errors ? `, ${r.otp.errors} errors` : ""}`, met: (r.otp.checkMs.p99 ?? Infinity) < 20 && r.otp.errors === 0 });
  // the production processes only: the ingest phase's earlier variants (Express route…) are baselines, run from tsx
  const ours = r.memory.filter((m) => m.process === "bot (API + workers)" || (m.process.startsWith("bot") && m.process.includes("(production)")));
  if (ours.length) {
    const worst = Math.max(...ours.map((m) => m.peakRssMiB ?? 0));
    out.push({ name: "peak RSS of the bot's production processes", goal: "< 250 MB", value: `${fmt(worst * 1.048576, 0)} MB (${fmt(worst)} MiB)`, met: worst * 1.048576 < 250 });
  }
  return out;
}

/** The table printed at the end of a run. */
export function table(r: BenchResults): string {
  const lines: string[] = [];
  const row = (cols: string[], widths: number[]) => lines.push(cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  if (r.ingest) {
    const w = [52, 12, 9, 9, 9];
    row(["ingest (64 connections, closed loop)", "webhooks/s", "p50 ms", "p99 ms", "vs bare"], w);
    const bare = r.ingest.closedLoop.find((c) => c.id === "bare")?.perSecond ?? NaN;
    for (const c of r.ingest.closedLoop) row([c.label, fmt(c.perSecond), fmt(c.latencyMs.p50, 1), fmt(c.latencyMs.p99, 1), pct(c.perSecond / bare)], w);
    const m = r.ingest.metaRate;
    if (m) row([`bot at ${fmt(m.targetRate)}/s (open loop, Meta's mix)`, fmt(m.perSecond), fmt(m.latencyMs.p50, 1), fmt(m.latencyMs.p99, 1), ""], w);
    lines.push("");
  }
  if (r.reply) {
    const w = [52, 12, 9, 9, 9];
    row(["reply (text → reply at the sandbox)", "msg/s", "p50 ms", "p99 ms", "bot CPU"], w);
    for (const x of r.reply.rates) row([`at ${x.ratePerSecond} msg/s (${x.answered}/${x.messages} answered)`, fmt(x.achievedPerSecond), fmt(x.latencyMs.p50, 1), fmt(x.latencyMs.p99, 1), `${fmt(x.botCpuPercent)}%`], w);
    lines.push("");
  }
  if (r.outbound) {
    const w = [52, 12, 9, 9, 9];
    row(["outbound (send worker → sandbox)", "msg/s", "limit", "error", "bot CPU"], w);
    for (const o of r.outbound.runs) row([`limit ${o.limitPerSecond}/s`, fmt(o.achievedPerSecond, 1), fmt(o.limitPerSecond), `${fmt(o.errorPercent, 1)}%`, `${fmt(o.botCpuPercent)}%`], w);
    lines.push("");
  }
  if (r.otp) {
    const w = [52, 12, 9, 9, 9];
    row([`otp cycle at ${r.otp.ratePerSecond}/s (open loop)`, "cycles/s", "p50 ms", "p99 ms", "bot CPU"], w);
    row(["cycle", fmt(r.otp.cyclesPerSecond, 1), fmt(r.otp.cycleMs.p50, 1), fmt(r.otp.cycleMs.p99, 1), `${fmt(r.otp.botCpuPercent)}%`], w);
    row(["  create", "", fmt(r.otp.createMs.p50, 1), fmt(r.otp.createMs.p99, 1), ""], w);
    row(["  check", "", fmt(r.otp.checkMs.p50, 1), fmt(r.otp.checkMs.p99, 1), ""], w);
    lines.push("");
  }
  if (r.roundTrips) {
    row(["round trips per operation (fewest of the runs)", "PostgreSQL", "Redis cmd", "besides fetches", "Redis rt"], [52, 12, 9, 15, 9]);
    for (const [k, label] of ROUND_TRIP_ROWS) {
      const x = r.roundTrips[k];
      row([label, fmt(x.pgRoundTrips), fmt(x.redisCommands), fmt(x.redisCommandsBesidesFetches), fmt(x.redisRoundTrips)], [52, 12, 9, 15, 9]);
    }
    lines.push("");
  }
  if (r.memory.length) {
    const w = [52, 12, 9];
    row(["peak RSS", "MiB", "phase"], w);
    for (const m of r.memory) row([m.process, fmt(m.peakRssMiB, 1), m.phase], [52, 12, 18]);
    lines.push("");
  }
  const t = targets(r);
  if (t.length) {
    const w = [40, 22, 34, 6];
    row(["target", "goal", "this run", "met"], w);
    for (const x of t) row([x.name, x.goal, x.value, x.met ? "yes" : "NO"], w);
  }
  return lines.join("\n");
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Two panels: webhooks/s of every ingest target, and the latency targets (p99 against their limits). */
export function chart(r: BenchResults): string {
  const W = 860;
  const parts: string[] = [];
  let y = 34;
  parts.push(`<text x="20" y="22" font-size="15" font-weight="bold">WhatsApp verification bot: benchmarks (${esc(r.env.date.slice(0, 10))}, ${esc(r.env.cpus)})</text>`);
  if (r.ingest) {
    const rows = [...r.ingest.closedLoop];
    const max = Math.max(...rows.map((x) => x.perSecond));
    parts.push(`<text x="20" y="${y + 16}" font-size="13" font-weight="bold">Webhook ingest, 64 connections: signed webhooks per second (higher is better)</text>`);
    y += 26;
    for (const x of rows) {
      const w = Math.max(1, (x.perSecond / max) * 420);
      const ours = x.id.startsWith("bot");
      const colour = x.id === "bot" ? "#1a7f37" : ours ? "#8fc99a" : "#8a8f98";
      parts.push(`<text x="20" y="${y + 14}" font-size="12">${esc(x.label)}</text>`);
      parts.push(`<rect x="360" y="${y + 3}" width="${w.toFixed(1)}" height="15" fill="${colour}"/>`);
      parts.push(`<text x="${(366 + w).toFixed(1)}" y="${y + 15}" font-size="12">${fmt(x.perSecond)}/s · p99 ${fmt(x.latencyMs.p99, 1)} ms</text>`);
      y += 21;
    }
    y += 12;
  }
  const lat: { label: string; value: number | null; limit: number }[] = [];
  if (r.ingest?.metaRate) lat.push({ label: `ack p99 at ${fmt(r.ingest.metaRate.targetRate)} webhooks/s`, value: r.ingest.metaRate.latencyMs.p99, limit: 50 });
  for (const x of r.reply?.rates ?? []) lat.push({ label: `reply p99 at ${x.ratePerSecond} msg/s`, value: x.latencyMs.p99, limit: 100 });
  if (r.otp) lat.push({ label: `OTP check p99 at ${r.otp.ratePerSecond}/s`, value: r.otp.checkMs.p99, limit: 20 });
  if (lat.length) {
    parts.push(`<text x="20" y="${y + 16}" font-size="13" font-weight="bold">Latency p99 against its target (bar = measured, line = target; lower is better)</text>`);
    y += 26;
    const scale = 420 / Math.max(...lat.map((l) => Math.max(l.value ?? 0, l.limit) * 1.1));
    for (const l of lat) {
      const w = Math.max(1, (l.value ?? 0) * scale);
      const ok = (l.value ?? Infinity) < l.limit;
      parts.push(`<text x="20" y="${y + 14}" font-size="12">${esc(l.label)}</text>`);
      parts.push(`<rect x="360" y="${y + 3}" width="${w.toFixed(1)}" height="15" fill="${ok ? "#1a7f37" : "#cf222e"}"/>`);
      parts.push(`<line x1="${(360 + l.limit * scale).toFixed(1)}" x2="${(360 + l.limit * scale).toFixed(1)}" y1="${y}" y2="${y + 21}" stroke="#24292f" stroke-width="2"/>`);
      parts.push(`<text x="${(366 + Math.max(w, l.limit * scale)).toFixed(1)}" y="${y + 15}" font-size="12">${fmt(l.value, 1)} ms (target ${l.limit})</text>`);
      y += 21;
    }
    y += 12;
  }
  for (const o of r.outbound?.runs ?? []) {
    parts.push(`<text x="20" y="${y + 14}" font-size="12">outbound at a ${fmt(o.limitPerSecond)}/s limit: ${fmt(o.achievedPerSecond, 1)}/s (${o.errorPercent > 0 ? "+" : ""}${fmt(o.errorPercent, 1)}%)</text>`);
    y += 18;
  }
  y += 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="system-ui, sans-serif" fill="#24292f"><rect width="100%" height="100%" fill="#fff"/>${parts.join("")}</svg>\n`;
}

/** The generated part of docs/benchmarks.md. */
export function markdown(r: BenchResults): string {
  const l: string[] = [];
  const e = r.env;
  l.push(`Run of ${e.date.slice(0, 16).replace("T", " ")} UTC on ${e.cpus}, ${e.memoryGiB} GiB, Node ${e.node}; load average at start ${e.loadAverageAtStart.join(" / ")}; ${e.secondsPerMeasurement} s per measurement; whole run ${fmt(r.wallSeconds)} s.`);
  l.push(`Redis ${e.redis.version} with appendonly=${e.redis.appendonly}, save="${e.redis.save}", maxmemory-policy=${e.redis.maxmemoryPolicy}; PostgreSQL ${e.postgres}. Bot configuration: ${Object.entries(e.config).filter(([k]) => k !== "protections").map(([k, v]) => `${k}=${v}`).join(", ")}. ${e.config.protections as string}.`);
  l.push("");
  l.push("![benchmarks](images/bench.svg)");
  l.push("");
  const t = targets(r);
  if (t.length) {
    l.push("| target | goal | this run | met |", "| --- | --- | --- | --- |");
    for (const x of t) l.push(`| ${x.name} | ${x.goal} | ${x.value} | ${x.met ? "yes" : "**no**"} |`);
    l.push("");
  }
  if (r.ingest) {
    l.push(`### Webhook ingest (${r.ingest.connections} connections, closed loop, unique signed text-message webhooks)`, "");
    l.push("| server | webhooks/s | p50 ms | p99 ms | vs bare | server CPU | server CPU per webhook | load generator CPU | peak RSS MiB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    const bare = r.ingest.closedLoop.find((c) => c.id === "bare")?.perSecond ?? NaN;
    for (const c of r.ingest.closedLoop) l.push(`| ${c.label} | ${fmt(c.perSecond)} | ${fmt(c.latencyMs.p50, 1)} | ${fmt(c.latencyMs.p99, 1)} | ${pct(c.perSecond / bare)} | ${fmt(c.serverCpuPercent)}% | ${fmt((c.cpuMsPerRequest ?? NaN) * 1000)} µs | ${fmt(c.loadgenCpuPercent)}% | ${fmt(c.peakRssMiB, 1)} |`);
    l.push("");
    const x = r.ingest.ratios;
    l.push(`Ratios: bot / bare ${pct(x.botVsBare)}, bot / Express no-op ${pct(x.botVsExpress)}, bot / BuilderBot ${pct(x.botVsBuilderBot)}, Express no-op / bare ${pct(x.expressVsBare)}, BuilderBot / bare ${pct(x.builderBotVsBare)}, bot after / before ${fmt(x.botVsBefore, 2)}×.`);
    const m = r.ingest.metaRate;
    if (m) {
      l.push("");
      l.push(`At Meta's rate (open loop, ${fmt(m.targetRate)} webhooks/s scheduled, ${m.mix}): ${fmt(m.perSecond)} acknowledged/s, p50 ${fmt(m.latencyMs.p50, 1)} ms, p90 ${fmt(m.latencyMs.p90, 1)} ms, p99 ${fmt(m.latencyMs.p99, 1)} ms, max ${fmt(m.latencyMs.max, 1)} ms; answers ${JSON.stringify(m.codes)}; bot CPU ${fmt(m.serverCpuPercent)}% of one core, load generator ${fmt(m.loadgenCpuPercent)}%.`);
    }
    l.push("");
  }
  if (r.reply) {
    l.push(`### Reply latency (customer's text → the bot's reply at the sandbox; ${fmt(r.reply.contacts)} contacts round-robin; ${r.reply.workers})`, "");
    l.push("| rate | answered | p50 ms | p90 ms | p99 ms | max ms | webhook ack p50 / p99 ms | bot CPU |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const x of r.reply.rates) l.push(`| ${x.ratePerSecond}/s | ${x.answered}/${x.messages} | ${fmt(x.latencyMs.p50, 1)} | ${fmt(x.latencyMs.p90, 1)} | ${fmt(x.latencyMs.p99, 1)} | ${fmt(x.latencyMs.max, 1)} | ${fmt(x.webhookAckMs?.p50, 1)} / ${fmt(x.webhookAckMs?.p99, 1)} | ${fmt(x.botCpuPercent)}% |`);
    l.push("");
  }
  if (r.outbound) {
    l.push(`### Outbound (${r.outbound.note})`, "");
    l.push("| limit | achieved | error | per second in the window | bot CPU |", "| ---: | ---: | ---: | --- | ---: |");
    for (const o of r.outbound.runs) l.push(`| ${fmt(o.limitPerSecond)}/s | ${fmt(o.achievedPerSecond, 1)}/s | ${fmt(o.errorPercent, 1)}% | ${o.perSecond.join(", ")} | ${fmt(o.botCpuPercent)}% |`);
    l.push("");
  }
  if (r.otp) {
    const o = r.otp;
    l.push(`### OTP cycle (${o.ratePerSecond} cycles started per second, open loop; ${o.limits})`, "");
    l.push("| | p50 ms | p90 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: |");
    for (const [k, s] of [["cycle", o.cycleMs], ["create", o.createMs], ["check", o.checkMs]] as const) l.push(`| ${k} | ${fmt(s.p50, 1)} | ${fmt(s.p90, 1)} | ${fmt(s.p99, 1)} | ${fmt(s.max, 1)} |`);
    l.push("", `${fmt(o.cyclesPerSecond, 1)} cycles/s completed, ${o.errors} errors, bot CPU ${fmt(o.botCpuPercent)}% of one core.`, "");
  }
  if (r.roundTrips) {
    l.push("### Round trips per operation (each alone on an idle bot, counted by protocol-parsing proxies; the fewest of the runs, the most in brackets)", "");
    l.push("| operation | PostgreSQL round trips | Redis commands | of them besides workers' job fetches | Redis round trips |", "| --- | ---: | ---: | ---: | ---: |");
    for (const [k, label] of ROUND_TRIP_ROWS) {
      const x = r.roundTrips[k];
      l.push(`| ${label} | ${x.pgRoundTrips} (${x.max.pgRoundTrips}) | ${x.redisCommands} (${x.max.redisCommands}) | ${x.redisCommandsBesidesFetches} (${x.max.redisCommandsBesidesFetches}) | ${x.redisRoundTrips} (${x.max.redisRoundTrips}) |`);
    }
    l.push("");
  }
  if (r.memory.length) {
    l.push("### Peak RSS (VmHWM) of each process", "", "| process | phase | MiB |", "| --- | --- | ---: |");
    for (const m of r.memory) l.push(`| ${m.process} | ${m.phase} | ${fmt(m.peakRssMiB, 1)} |`);
    l.push("");
  }
  return l.join("\n");
}

const START = "<!-- bench:start (generated by bench/report.ts from bench/results/latest.json: edit outside these markers) -->";
const END = "<!-- bench:end -->";

/** Writes the chart and the doc's generated part (docs: true); returns the table. */
export function writeReport(r: BenchResults, opts: { docs: boolean; root: string }): string {
  if (opts.docs) {
    mkdirSync(join(opts.root, "docs", "images"), { recursive: true });
    writeFileSync(join(opts.root, "docs", "images", "bench.svg"), chart(r));
    const path = join(opts.root, "docs", "benchmarks.md");
    const doc = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmarks\n\n";
    const i = doc.indexOf("<!-- bench:start");
    const j = doc.indexOf(END);
    const generated = `${START}\n\n${markdown(r)}\n${END}`;
    writeFileSync(path, i >= 0 && j > i ? doc.slice(0, i) + generated + doc.slice(j + END.length) : `${doc.trimEnd()}\n\n## Results\n\n${generated}\n`);
  }
  return table(r);
}

if (require.main === module) {
  const file = process.argv[2] ?? join(__dirname, "results", "latest.json");
  const r = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
  process.stdout.write(`${writeReport(r, { docs: true, root: join(__dirname, "..") })}\n`);
}
