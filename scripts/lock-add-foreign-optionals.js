#!/usr/bin/env node
/*
 * Our npm registry mirror serves only the platform packages of this machine (linux x64): optional native
 * binaries for other platforms (@swc/core-darwin-arm64, …) answer 404, so `npm install` leaves them out of
 * package-lock.json and `npm ci` then refuses the lock as "out of sync". This adds each missing optional
 * platform package to the lock with the os/cpu it is for, exactly what a full registry would have recorded, so
 * `npm ci` skips them on this platform (and installs them on theirs). Run after `npm install` changes the lock.
 */
const fs = require("fs");
const path = require("path");
const file = path.join(__dirname, "..", "package-lock.json");
const lock = JSON.parse(fs.readFileSync(file, "utf8"));
const pkgs = lock.packages;
const OS = ["darwin", "linux", "win32", "android", "freebsd", "openharmony", "sunos", "aix", "netbsd", "openbsd"];
const CPU = { x64: "x64", arm64: "arm64", arm: "arm", ia32: "ia32", ppc64: "ppc64", s390x: "s390x", loong64: "loong64", riscv64: "riscv64", ppc64le: "ppc64" };
let added = 0;
for (const [where, meta] of Object.entries(pkgs)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const base = where ? `${where}/node_modules/${name}` : `node_modules/${name}`;
    if (pkgs[base] || pkgs[`node_modules/${name}`]) continue;
    const parts = name.split("/").pop().split("-");
    const os = parts.find((p) => OS.includes(p));
    const cpuPart = parts.find((p) => p in CPU);
    if (!os || !cpuPart) {
      console.error(`cannot tell the platform of ${name}; left out`);
      continue;
    }
    const entry = { version, optional: true, os: [os], cpu: [CPU[cpuPart]] };
    if (meta.dev) entry.dev = true;
    if (parts.includes("musl") || parts.includes("musleabihf")) entry.libc = ["musl"];
    else if (os === "linux" && parts.some((p) => p.startsWith("gnu"))) entry.libc = ["glibc"];
    pkgs[`node_modules/${name}`] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + "\n");
console.log(`added ${added} foreign optional packages to package-lock.json`);
