import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Router } from "express";
import { parse } from "yaml";
import { projectRoot } from "../shared/project-root";

/** The Verify and admin API's OpenAPI document (docs/openapi.yaml), served as YAML and JSON, no auth. */
export function openApiRoutes(file = join(projectRoot(), "docs", "openapi.yaml")): Router {
  const router = Router();
  let cached: { yaml: string; json: unknown } | null = null;
  const load = () => {
    if (!cached) {
      const yaml = readFileSync(file, "utf8");
      cached = { yaml, json: parse(yaml) };
    }
    return cached;
  };
  router.get(["/openapi.yaml", "/v1/openapi.yaml"], (_req, res) => {
    res.type("application/yaml").send(load().yaml);
  });
  router.get(["/openapi.json", "/v1/openapi.json"], (_req, res) => {
    res.json(load().json);
  });
  return router;
}
