import { readFileSync } from "node:fs";
import { envSchema } from "../../src/config/env";
import { CONFIG_DOC_PATH, renderConfigDoc } from "../../scripts/gen-config-doc";

/** docs/configuration.md is generated from the schema: it must be regenerated whenever a variable changes. */
describe("docs/configuration.md", () => {
  it("is what `npm run docs:config` writes from the current schema", () => {
    const committed = readFileSync(CONFIG_DOC_PATH, "utf8");
    if (committed !== renderConfigDoc()) throw new Error("docs/configuration.md is out of date: run `npm run docs:config` and commit the result");
  });

  it("lists every variable of the schema with a meaning", () => {
    const doc = readFileSync(CONFIG_DOC_PATH, "utf8");
    for (const key of Object.keys(envSchema.shape)) {
      const row = doc.split("\n").find((l) => l.startsWith(`| \`${key}\` |`));
      expect(row).toBeDefined();
      expect(row!.split(" | ")[3]!.trim().length).toBeGreaterThan(10);
    }
  });
});
