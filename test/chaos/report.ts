/**
 * The reliability report, written by the tests themselves (issue 8, "Prove it holds").
 *
 *   import { recordScenario } from "../chaos/report";   // from any test folder
 *   recordScenario({
 *     id: "F1-worker-sigkill",                 // stable, unique; rows are sorted by section, then id
 *     title: "Worker killed with SIGKILL mid-queue",
 *     section: "faults",                       // "faults" | "attacks" | "scale"
 *     figures: { sent: 120, handled: 120, lost: 0, repeatedUnknownOutcome: 2, unknownOutcome: 2, retries: 7 },
 *     notes: "What was tried and what happened (one paragraph, or an array of paragraphs).",
 *   });
 *
 * - Results are merged (by id) into `docs/reliability.results.json`, and `docs/reliability.md` is regenerated
 *   from it on every call: a table (sent, handled, lost, repeated with unknown outcome) and one short section per
 *   scenario with all its figures, then the production Redis persistence advice. Never edit the .md by hand.
 * - Standard figures (all optional, numbers): `sent`, `handled`, `lost`, `repeatedUnknownOutcome`. Any other
 *   number or short string goes to the scenario's own list. "Holds" is computed: lost = 0, and where both are
 *   given, repeatedUnknownOutcome ≤ unknownOutcome (a reply repeats only where the send's outcome was unknown).
 * - Deterministic except for the numbers: no dates, no durations unless the test passes them as figures; keys and
 *   rows are sorted. Safe when several Jest workers record at once (a lock directory next to the JSON file).
 * - `WABOT_REPORT=0` turns recording off (e.g. while iterating on a test).
 */
import fs from "node:fs";
import path from "node:path";

export type ReportSection = "faults" | "attacks" | "scale";
export type Figure = number | string;

export interface ScenarioRecord {
  id: string;
  title: string;
  section: ReportSection;
  figures: Record<string, Figure> & { sent?: number; handled?: number; lost?: number; repeatedUnknownOutcome?: number };
  notes?: string | string[];
}

const DOCS = path.join(__dirname, "..", "..", "docs");
export const RESULTS_PATH = process.env.WABOT_REPORT_RESULTS ?? path.join(DOCS, "reliability.results.json");
export const REPORT_PATH = process.env.WABOT_REPORT_MD ?? path.join(DOCS, "reliability.md");

const SECTIONS: { key: ReportSection; title: string; intro: string }[] = [
  {
    key: "faults",
    title: "Faults",
    intro:
      "Real processes (`node --import tsx src/main/worker.ts` / `src/main/api.ts`), real PostgreSQL and Redis on " +
      "loopback, the Cloud API sandbox playing Meta in the test process. Redis is a `redis-server` the test starts on " +
      "a spare port; PostgreSQL outages go through a TCP proxy the test cuts and restores. The machine's shared " +
      "PostgreSQL and Redis are never stopped.",
  },
  { key: "attacks", title: "Attacks", intro: "Hostile input against the webhook and the APIs." },
  { key: "scale", title: "Scale-out", intro: "Several processes against the same PostgreSQL and Redis." },
];

const STANDARD = ["sent", "handled", "lost", "repeatedUnknownOutcome"] as const;
const LABELS: Record<string, string> = {
  sent: "sent",
  handled: "handled",
  lost: "lost",
  repeatedUnknownOutcome: "repeated (unknown outcome)",
  unknownOutcome: "sends with unknown outcome",
};

/** Records (or replaces) one scenario's figures and regenerates docs/reliability.md. */
export function recordScenario(record: ScenarioRecord): void {
  if (process.env.WABOT_REPORT === "0") return;
  if (!/^[A-Za-z0-9._-]+$/.test(record.id)) throw new Error(`recordScenario: id must be [A-Za-z0-9._-]+, got ${record.id}`);
  withLock(() => {
    const all = readResults();
    all[record.id] = normalise(record);
    fs.writeFileSync(RESULTS_PATH, JSON.stringify(sortKeys(all), null, 2) + "\n");
    fs.writeFileSync(REPORT_PATH, render(all));
  });
}

/** Regenerates docs/reliability.md from the results file (no new figures). */
export function regenerateReport(): string {
  const md = render(readResults());
  fs.writeFileSync(REPORT_PATH, md);
  return md;
}

/** The results and the report as they are on disk, read together (under the lock: never half-way through a write). */
export function snapshot(): { results: Record<string, ScenarioRecord>; markdown: string | null } {
  let out: { results: Record<string, ScenarioRecord>; markdown: string | null } = { results: {}, markdown: null };
  withLock(() => {
    let markdown: string | null = null;
    try {
      markdown = fs.readFileSync(REPORT_PATH, "utf8");
    } catch {
      markdown = null;
    }
    out = { results: readResults(), markdown };
  });
  return out;
}

export function readResults(): Record<string, ScenarioRecord> {
  try {
    return JSON.parse(fs.readFileSync(RESULTS_PATH, "utf8")) as Record<string, ScenarioRecord>;
  } catch {
    return {};
  }
}

function normalise(r: ScenarioRecord): ScenarioRecord {
  return {
    id: r.id,
    title: r.title,
    section: r.section,
    figures: sortKeys(r.figures) as ScenarioRecord["figures"],
    ...(r.notes !== undefined ? { notes: r.notes } : {}),
  };
}

function sortKeys<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]])) as T;
}

export function holds(f: ScenarioRecord["figures"]): boolean {
  if (typeof f.lost === "number" && f.lost !== 0) return false;
  if (typeof f.repeatedUnknownOutcome === "number" && typeof f.unknownOutcome === "number" && f.repeatedUnknownOutcome > f.unknownOutcome) return false;
  return true;
}

const cell = (v: Figure | undefined) => (v === undefined ? "–" : String(v));

export function render(all: Record<string, ScenarioRecord>): string {
  const rows = Object.values(all);
  const out: string[] = [];
  out.push("# Reliability");
  out.push("");
  out.push("<!-- Generated by the tests (test/chaos/report.ts, from docs/reliability.results.json): do not edit by hand. -->");
  out.push("");
  out.push(
    "What was done to the running bot to break it, what happened, and the figures the tests measured. Every row is " +
      "an automated test in `npm test` (`test/chaos/`, and the attack and scale-out suites); the figures below were " +
      "written by those tests on their last run, never typed by hand. **Lost** is a message answered `200` to Meta " +
      "(or a reply written to the outbox) that never got handled (or sent). **Repeated (unknown outcome)** counts " +
      "replies the sandbox (as Meta) received twice; the bot is allowed to repeat a send only when the outcome of the " +
      "earlier attempt was unknown (the request left, no answer was recorded), and every such attempt is recorded as a " +
      "`SendAttempt` row with outcome `unknown` (or `pending` if the process died), so the two counts are compared.",
  );
  out.push("");
  for (const s of SECTIONS) {
    const inSection = rows.filter((r) => r.section === s.key).sort((a, b) => a.id.localeCompare(b.id));
    if (inSection.length === 0) continue;
    out.push(`## ${s.title}`);
    out.push("");
    out.push(s.intro);
    out.push("");
    out.push("| scenario | sent | handled | lost | repeated (unknown outcome) | holds |");
    out.push("| --- | ---: | ---: | ---: | ---: | --- |");
    for (const r of inSection) {
      const f = r.figures;
      out.push(`| [${r.title}](#${r.id.toLowerCase()}) | ${cell(f.sent)} | ${cell(f.handled)} | ${cell(f.lost)} | ${cell(f.repeatedUnknownOutcome)} | ${holds(f) ? "yes" : "**no**"} |`);
    }
    out.push("");
    for (const r of inSection) {
      out.push(`### ${r.title}`);
      out.push("");
      out.push(`<a id="${r.id.toLowerCase()}"></a>\`${r.id}\``);
      out.push("");
      const notes = r.notes === undefined ? [] : Array.isArray(r.notes) ? r.notes : [r.notes];
      for (const n of notes) {
        out.push(n);
        out.push("");
      }
      const keys = Object.keys(r.figures).sort((a, b) => {
        const ia = STANDARD.indexOf(a as (typeof STANDARD)[number]);
        const ib = STANDARD.indexOf(b as (typeof STANDARD)[number]);
        return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
      });
      for (const k of keys) out.push(`- ${LABELS[k] ?? k}: ${r.figures[k]}`);
      out.push("");
    }
  }
  out.push("## Redis persistence in production");
  out.push("");
  out.push(
    "The webhook answers `200` to Meta only once Redis has taken a BullMQ job for every message and status in the " +
      "POST; from then on Meta will not redeliver, and the job in Redis is the only copy of the message until a worker " +
      "has handled it in PostgreSQL. Outbound replies are safer (the `queued` row in PostgreSQL is the truth and the " +
      "outbox sweeper re-dispatches a row whose job vanished), but inbound messages are not. So production Redis must " +
      "keep what it acknowledged:",
  );
  out.push("");
  out.push("- `appendonly yes`: every write is logged to the append-only file and replayed at start; RDB snapshots alone lose everything since the last snapshot.");
  out.push("- `appendfsync everysec`: the file is fsynced once a second, so a power loss or kernel crash loses at most about a second of jobs; a Redis *process* crash loses nothing (the data is in the OS page cache). `always` closes that second at a large cost in throughput.");
  out.push("- `maxmemory-policy noeviction`: Redis must refuse writes when full (the webhook then answers `503` and Meta redelivers) rather than silently evict queued jobs.");
  out.push("- A managed Redis: turn on AOF / \"durability\" (or Multi-AZ with AOF) and noeviction; a replica alone is asynchronous and can lose the last writes on fail-over.");
  out.push("");
  out.push(
    "`docker-compose.yml` starts Redis with `--appendonly yes --appendfsync everysec --maxmemory-policy noeviction` " +
      "and a volume for `/data`. The fault tests use a Redis without persistence on purpose: they stop it only while " +
      "no acknowledged job is waiting in it, and show that while it is down the webhook answers `503` (so Meta keeps " +
      "the message) instead of `200`.",
  );
  out.push("");
  return out.join("\n");
}

/** A lock directory (mkdir is atomic) so parallel Jest workers never interleave read-merge-write. */
function withLock(fn: () => void): void {
  const lock = RESULTS_PATH + ".lock";
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      try {
        // a lock left by a killed process
        if (Date.now() - fs.statSync(lock).mtimeMs > 10_000) fs.rmSync(lock, { recursive: true, force: true });
      } catch {
        // gone already
      }
      if (Date.now() > until) throw new Error(`recordScenario: could not take ${lock}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}
