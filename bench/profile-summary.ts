/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `PROFILE=1 npm run bench`): the functions with the most self
 * time, and self time by package. `npx tsx bench/profile-summary.ts <file.cpuprofile> [top=25] [skip seconds=0]` (skip the
 * start-up: module loading).
 * The same files open as flame graphs in Chrome DevTools (Performance → Load profile) or speedscope.app.
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function summarise(file: string, top = 25, skipSeconds = 0): string {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const self = new Map<number, number>();
  let t = 0;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    if (t >= skipSeconds * 1e6) self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  for (const n of p.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t) continue;
    const url = n.callFrame.url.replace(/^file:\/\//, "");
    const short = url.replace(/.*node_modules\//, "").replace(/.*\/work\/main\//, "");
    const key = `${n.callFrame.functionName || "(anonymous)"} ${short ? `${short}:${n.callFrame.lineNumber + 1}` : ""}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + t);
    const pkg = url.includes("node_modules/")
      ? url.replace(/.*node_modules\//, "").split("/").slice(0, url.includes("node_modules/@") ? 2 : 1).join("/")
      : url.startsWith("node:") ? "node (core)" : url.includes("/src/") ? "src (ours)" : url ? "other" : n.callFrame.functionName || "(native)";
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + t);
  }
  const lines = [`${file}: ${(total / 1e6).toFixed(2)} s sampled`];
  const list = (title: string, m: Map<string, number>, k: number) => {
    lines.push("", title);
    for (const [name, t] of [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, k)) lines.push(`${((t / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
  };
  list("self time by package", byPkg, 15);
  list("self time by function", byFn, top);
  // who pays for the socket writes: the nearest frame outside node's core above each writev/writeBuffer/writeUtf8String
  const parent = new Map<number, Node>();
  const byId = new Map<number, Node>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n);
  }
  const writers = new Map<string, number>();
  for (const n of p.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t || !/^(writev|writeBuffer|writeUtf8String|writeLatin1String)$/.test(n.callFrame.functionName)) continue;
    let up = parent.get(n.id);
    while (up && (up.callFrame.url.startsWith("node:") || !up.callFrame.url)) up = parent.get(up.id);
    const where = up ? up.callFrame.url.replace(/.*node_modules\//, "").replace(/.*\/work\/main\//, "").split("/").slice(0, 2).join("/") + ` ${up.callFrame.functionName}` : "(unknown)";
    writers.set(where, (writers.get(where) ?? 0) + t);
  }
  if (writers.size) list("socket writes (writev, writeBuffer, writeUtf8String) by the first caller outside node's core", writers, 12);
  // which of our functions the time is spent under (the nearest src/ frame above each sample; async work resumes in
  // its continuation, so this counts the synchronous stretch each of our functions starts)
  const ours = new Map<string, number>();
  for (const n of p.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t || n.callFrame.functionName === "(idle)") continue;
    let up: Node | undefined = n;
    while (up && !up.callFrame.url.includes("/src/")) up = parent.get(up.id);
    const key = up ? `${up.callFrame.functionName || "(anonymous)"} ${up.callFrame.url.replace(/.*\/src\//, "src/")}:${up.callFrame.lineNumber + 1}` : "(outside src/: libraries' own callbacks, I/O, GC)";
    ours.set(key, (ours.get(key) ?? 0) + t);
  }
  list("time under our functions (nearest src/ frame above each sample)", ours, top);
  return lines.join("\n");
}

if (require.main === module) {
  if (!process.argv[2]) throw new Error("usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [top]");
  process.stdout.write(`${summarise(process.argv[2], Number(process.argv[3] ?? 25), Number(process.argv[4] ?? 0))}\n`);
}
