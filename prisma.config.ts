// `prisma generate` must resolve the datasource url, or the CLI falls back to the Rust engines and tries to
// download them (no network here). Any well-formed URL will do for generate. See docs/architecture.md.
process.env.DATABASE_URL ??= "postgresql://localhost:5432/unset";
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js", // WebAssembly schema engine driven through the adapter: no binary download
  schema: "prisma/schema.prisma",
  adapter: async () => new PrismaPg({ connectionString: process.env.DATABASE_URL! }),
});
