import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FLOW_FILE_RE } from "../flows/builtin";
import { parseFlowText } from "../flows/schema";

/**
 * `npm run flows:validate -- <file or directory…>`: checks flow definition files offline (no database, no Redis).
 * Prints `file: OK` for each valid file and `file: path: message` for each error of an invalid one.
 * Exit 0 when every file is valid, 1 when one is not, 2 on usage errors (no files, an unreadable file or directory).
 * A directory stands for every *.json|*.yaml|*.yml in it (not recursive).
 */
export function main(args: string[], out: (line: string) => void = (l) => process.stdout.write(l + "\n"), err: (line: string) => void = (l) => process.stderr.write(l + "\n")): number {
  const paths = args.filter((a) => a !== "--");
  if (paths.length === 0 || paths.some((a) => a === "-h" || a === "--help")) {
    err("usage: npm run flows:validate -- <file.json|file.yaml|directory>…");
    return 2;
  }
  const files: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      err(`${p}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 2;
    }
    if (st.isDirectory()) {
      const inDir = readdirSync(p).filter((f) => FLOW_FILE_RE.test(f)).sort().map((f) => join(p, f));
      if (inDir.length === 0) {
        err(`${p}: no flow files (*.json, *.yaml, *.yml) in this directory`);
        return 2;
      }
      files.push(...inDir);
    } else files.push(p);
  }
  // read everything first: an unreadable file is a usage error, reported before any verdict
  const texts: string[] = [];
  for (const file of files) {
    try {
      texts.push(readFileSync(file, "utf8"));
    } catch (e) {
      err(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 2;
    }
  }
  let invalid = 0;
  for (const [i, file] of files.entries()) {
    const r = parseFlowText(texts[i]!, file);
    if (r.ok) out(`${file}: OK`);
    else {
      invalid++;
      for (const e of r.errors) out(`${file}: ${e.path}: ${e.message}`);
    }
  }
  if (files.length > 1) out(invalid === 0 ? `${files.length} files valid` : `${invalid} of ${files.length} files invalid`);
  return invalid === 0 ? 0 : 1;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
