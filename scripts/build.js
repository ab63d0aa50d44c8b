#!/usr/bin/env node
// The production build: compiles src/ with tsconfig.build.json into <out>/src/… and copies the files the compiled
// code reads beside itself (the web pages' assets). flows/, docs/openapi.yaml and package.json are found from the
// project root at run time (src/shared/project-root.ts), so <out> must stay inside the project (default: dist).
//
//   node scripts/build.js [--out-dir <dir>]        (npm run build)
"use strict";
const { execFileSync } = require("node:child_process");
const { cpSync, existsSync, readdirSync, rmSync } = require("node:fs");
const { join, resolve } = require("node:path");

const root = resolve(__dirname, "..");
const i = process.argv.indexOf("--out-dir");
const out = resolve(root, i > 0 && process.argv[i + 1] ? process.argv[i + 1] : "dist");

rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json"), "--outDir", out], { cwd: root, stdio: "inherit" });

let copied = 0;
const web = join(root, "src", "web");
for (const page of readdirSync(web)) {
  const assets = join(web, page, "assets");
  if (!existsSync(assets)) continue;
  cpSync(assets, join(out, "src", "web", page, "assets"), { recursive: true });
  copied++;
}
console.log(`built ${out} (${copied} asset folders copied)`);
