import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

let root: string | undefined;

/**
 * The directory holding package.json, flows/ and docs/: found by walking up from this file, so the same code
 * works from the sources (src/shared, run by tsx) and from the compiled build (dist/src/shared, `npm run build`).
 */
export function projectRoot(): string {
  if (root === undefined) {
    let dir = __dirname;
    while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
    root = existsSync(join(dir, "package.json")) ? dir : join(__dirname, "..", "..");
  }
  return root;
}
