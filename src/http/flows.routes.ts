import type { StepUp } from "../tenants/step-up";
import express, { Router, type Request } from "express";
import { z } from "zod";
import type { PrismaClient } from "../db/prisma";
import { loadBuiltinFlows } from "../flows/builtin";
import { FlowNotFoundError, type FlowStore } from "../flows/flow-store";
import { flowTextProblem, parseFlowData, validateFlow, type FlowDefinition, type FlowError } from "../flows/schema";
import { sensitiveActionsOf } from "../journeys/actions";
import { askedTenant, requireScope } from "./auth";
import { ApiError } from "./errors";

const BODY_LIMIT = "1mb";
const YAML_TYPES = ["application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"];
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

// a definition nested too deeply is refused from its bytes, before JSON.parse (flowTextProblem: one linear scan)
const jsonBody = express.json({
  limit: BODY_LIMIT,
  verify: (_req, _res, buf) => {
    const problem = flowTextProblem(buf.toString("utf8"), "json");
    if (problem) throw invalidFlow([{ path: "(root)", message: `not valid JSON: ${problem}` }]);
  },
});
const yamlBody = express.text({ type: YAML_TYPES, limit: BODY_LIMIT });

function invalidFlow(errors: FlowError[]): ApiError {
  return new ApiError(422, "invalid_flow", `The flow definition is not valid: ${errors.length} error${errors.length === 1 ? "" : "s"}`, errors);
}

function flowNotFound(name: string, version?: number): ApiError {
  return new ApiError(404, "flow_not_found", version === undefined ? `No flow named '${name}'` : `Flow '${name}' has no version ${version}`);
}

/**
 * The flows admin API (mounted under /admin, after authentication): list, read, publish (PUT: JSON or YAML),
 * versions, rollback, delete. Everything acts on the caller's tenant; the deployment's ADMIN_API_KEY may name
 * another with `?tenantId=`. Publishes, rollbacks and deletions are audited (in the same transaction, by FlowStore).
 */
export function flowsRoutes(deps: { prisma: PrismaClient; flows: FlowStore; stepUp: StepUp }): Router {
  const { prisma, flows, stepUp } = deps;
  const router = Router();
  // deleting a flow stops a journey for every customer: held for step-up when a tenant key asks
  stepUp.register("flow.delete", async (tenantId, payload, actor) => {
    const name = String(payload.name);
    if (!(await flows.delete(tenantId, name, actor))) throw flowNotFound(name);
    return { status: 200, body: { name, deleted: true } };
  });

  // publishing a flow that can run a sensitive action (mark_verified, change_number, remove_pin…) or that replaces a
  // built-in (login, recovery, re-verification…) changes how customers prove who they are: held for a tenant key
  stepUp.register("flow.publish", async (tenantId, payload, actor) => {
    const r = validateFlow(payload.definition);
    if (!r.ok) throw invalidFlow(r.errors);
    const result = await flows.publish(tenantId, r.flow, actor, "api");
    return { status: result.created ? 201 : 200, body: { name: result.name, version: result.version } };
  });
  stepUp.register("flow.rollback", async (tenantId, payload, actor) => {
    const name = String(payload.name);
    const version = Number(payload.version);
    try {
      const result = await flows.rollback(tenantId, name, version, actor);
      return { status: 200, body: { name: result.name, version: result.version, rolledBackTo: version } };
    } catch (err) {
      if (err instanceof FlowNotFoundError) throw flowNotFound(name, err.version);
      throw err;
    }
  });

  /** why publishing `definition` as `name` needs step-up (empty: it does not) */
  async function sensitivity(tenantId: string, name: string, definition: FlowDefinition): Promise<string[]> {
    const reasons = sensitiveActionsOf(definition).map((a) => `action ${a}`);
    const current = (await flows.list(tenantId)).find((f) => f.name === name);
    if (current?.source === "builtin" || builtinNames().has(name)) reasons.push(`replaces the built-in flow ${name}`);
    return reasons;
  }

  const tenantOf = (req: Request) => askedTenant(prisma, req.principal!, req.query.tenantId);

  function nameOf(req: Request): string {
    const name = req.params.name as string;
    if (!NAME_RE.test(name)) throw flowNotFound(name);
    return name;
  }

  router.get("/flows", requireScope("read"), async (req, res) => {
    const tenantId = await tenantOf(req);
    res.json({ flows: await flows.list(tenantId) });
  });

  router.get("/flows/:name", requireScope("read"), async (req, res) => {
    const tenantId = await tenantOf(req);
    const name = nameOf(req);
    let version: number | undefined;
    if (req.query.version !== undefined) {
      const v = z.coerce.number().int().min(1).max(2_147_483_647).safeParse(req.query.version);
      if (!v.success) throw new ApiError(400, "invalid_request", "version must be a positive integer");
      version = v.data;
    }
    const flow = await flows.get(tenantId, name, version);
    if (!flow) throw (version !== undefined && (await flows.get(tenantId, name)) ? flowNotFound(name, version) : flowNotFound(name));
    res.json(flow);
  });

  router.put("/flows/:name", requireScope("admin"), jsonBody, yamlBody, async (req, res) => {
    const tenantId = await tenantOf(req);
    const pathName = req.params.name as string;
    let doc: unknown;
    if (req.is(YAML_TYPES)) {
      const text = typeof req.body === "string" ? req.body : "";
      // the pre-scan, then one parse
      const parsed = parseFlowData(text, "yaml");
      if (!parsed.ok) throw invalidFlow(parsed.errors);
      doc = parsed.data;
    } else if (req.is("application/json") || req.is("+json")) {
      doc = req.body;
    } else {
      throw new ApiError(415, "unsupported_media_type", "Send the definition as application/json or application/yaml");
    }
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw invalidFlow([{ path: "(root)", message: "a flow definition is an object" }]);
    const given = (doc as { name?: unknown }).name;
    if (given === undefined) doc = { ...(doc as object), name: pathName };
    else if (given !== pathName) throw invalidFlow([{ path: "name", message: `the definition's name ${JSON.stringify(given)} differs from the path's '${pathName}'` }]);
    const r = validateFlow(doc);
    if (!r.ok) throw invalidFlow(r.errors);
    if (!req.principal!.superAdmin && (await sensitivity(tenantId, r.flow.name, r.flow)).length > 0) {
      const held = await stepUp.run(req.principal!, tenantId, "flow.publish", { definition: doc as Record<string, unknown> });
      return void res.status(held.status).json(held.body);
    }
    const result = await flows.publish(tenantId, r.flow, req.principal!.actor, "api");
    res.status(result.created ? 201 : 200).json({ name: result.name, version: result.version });
  });

  router.get("/flows/:name/versions", requireScope("read"), async (req, res) => {
    const tenantId = await tenantOf(req);
    const name = nameOf(req);
    const versions = await flows.versions(tenantId, name);
    if (!versions) throw flowNotFound(name);
    res.json({ name, versions });
  });

  router.post("/flows/:name/rollback", requireScope("admin"), jsonBody, async (req, res) => {
    const tenantId = await tenantOf(req);
    const name = nameOf(req);
    const body = z.strictObject({ version: z.number().int().min(1) }).safeParse(req.body ?? {});
    if (!body.success) throw new ApiError(400, "invalid_request", "Send {\"version\": N}: the version to roll back to", body.error.issues.map((i) => ({ path: i.path.join(".") || "body", message: i.message })));
    if (!req.principal!.superAdmin) {
      // a rollback publishes an older definition: held like its publish would be (the version must exist: 404 first)
      const target = await flows.get(tenantId, name, body.data.version);
      if (!target) throw (await flows.get(tenantId, name)) ? flowNotFound(name, body.data.version) : flowNotFound(name);
      const def = validateFlow(target.definition);
      if (!def.ok || (await sensitivity(tenantId, name, def.flow)).length > 0) {
        const held = await stepUp.run(req.principal!, tenantId, "flow.rollback", { name, version: body.data.version });
        return void res.status(held.status).json(held.body);
      }
    }
    try {
      const result = await flows.rollback(tenantId, name, body.data.version, req.principal!.actor);
      res.json({ name: result.name, version: result.version, rolledBackTo: body.data.version });
    } catch (err) {
      if (err instanceof FlowNotFoundError) throw flowNotFound(name, err.version);
      throw err;
    }
  });

  router.delete("/flows/:name", requireScope("admin"), async (req, res) => {
    const tenantId = await tenantOf(req);
    const name = nameOf(req);
    // a flow that does not exist is 404 now, not after a code
    if (!(await flows.list(tenantId)).some((f) => f.name === name)) throw flowNotFound(name);
    const result = await stepUp.run(req.principal!, tenantId, "flow.delete", { name });
    res.status(result.status).json(result.body);
  });

  return router;
}

let builtins: Set<string> | null = null;
/** the names of the shipped built-in flows (read once) */
function builtinNames(): Set<string> {
  builtins ??= new Set(loadBuiltinFlows().files.map((f) => f.flow.name));
  return builtins;
}
