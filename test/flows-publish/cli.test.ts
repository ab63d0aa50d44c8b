import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** `npm run flows:validate -- <file…>`: offline checks, run as a child process like the npm script. */
const ROOT = resolve(__dirname, "..", "..");
const CLI = join(ROOT, "src", "cli", "flows-validate.ts");
let dir: string;

function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: ROOT, env: { ...process.env, DATABASE_URL: "" } }, (err, stdout, stderr) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "flows-validate-"));
  writeFileSync(
    join(dir, "ping.json"),
    JSON.stringify({ name: "ping", triggers: [{ type: "keyword", keywords: ["ping-42"] }], steps: [{ id: "answer", type: "send", text: "pong from a custom flow" }] }),
  );
  writeFileSync(join(dir, "hello.yaml"), "name: hello\ntriggers:\n  - type: keyword\n    keywords: [hi]\nsteps:\n  - id: hi\n    type: send\n    text: Hello\n");
  writeFileSync(
    join(dir, "bad.json"),
    JSON.stringify({ name: "Bad Name", steps: [{ id: "a", type: "send", text: "x", next: "missing" }, { id: "b", type: "warp" }] }),
  );
  writeFileSync(join(dir, "bad.yml"), "name: badyaml\nsteps:\n  - id: a\n    type: send\n    next: nowhere\n    text: hi\n");
  writeFileSync(join(dir, "syntax.json"), "{ not json");
  mkdirSync(join(dir, "good"));
  writeFileSync(join(dir, "good", "a.json"), JSON.stringify({ name: "a", steps: [{ id: "x", type: "end" }] }));
  writeFileSync(join(dir, "good", "b.yaml"), "name: b\nsteps:\n  - id: x\n    type: end\n");
  writeFileSync(join(dir, "good", "notes.txt"), "ignored");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("flows:validate", () => {
  it("valid JSON and YAML files: file: OK, exit 0", async () => {
    const r = await run(join(dir, "ping.json"), join(dir, "hello.yaml"));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${join(dir, "ping.json")}: OK`);
    expect(r.stdout).toContain(`${join(dir, "hello.yaml")}: OK`);
  }, 30_000);

  it("invalid files: one line per error (file: path: message), exit 1", async () => {
    const bad = join(dir, "bad.json");
    const r = await run(join(dir, "ping.json"), bad, join(dir, "bad.yml"), join(dir, "syntax.json"));
    expect(r.code).toBe(1);
    const lines = r.stdout.split("\n");
    expect(lines).toContain(`${join(dir, "ping.json")}: OK`);
    expect(lines.some((l) => l.startsWith(`${bad}: name: `))).toBe(true);
    expect(lines.some((l) => l.startsWith(`${bad}: steps[1].type: unknown step type "warp"`))).toBe(true);
    expect(lines).toContain(`${join(dir, "bad.yml")}: steps[0].next: no step with id 'nowhere'`);
    expect(lines.some((l) => l.startsWith(`${join(dir, "syntax.json")}: (root): not valid JSON`))).toBe(true);
  }, 30_000);

  it("a directory stands for its flow files", async () => {
    const r = await run(join(dir, "good"));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${join(dir, "good", "a.json")}: OK`);
    expect(r.stdout).toContain(`${join(dir, "good", "b.yaml")}: OK`);
    expect(r.stdout).not.toContain("notes.txt");
  }, 30_000);

  it("usage errors exit 2: no files, a file that cannot be read", async () => {
    const none = await run();
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/usage/);
    const missing = await run(join(dir, "ping.json"), join(dir, "nope.json"));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${join(dir, "nope.json")}: cannot read`);
  }, 30_000);

  it("the shipped flows/ directory is valid", async () => {
    const r = await run(join(ROOT, "flows"));
    expect(r.code).toBe(0);
  }, 30_000);
});
