import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Router } from "express";
import { parse } from "yaml";
import { adminRoutes } from "../../src/http/admin.routes";
import { contactsRoutes } from "../../src/http/contacts.routes";
import { conversationRoutes } from "../../src/http/conversation.routes";
import { flowsRoutes } from "../../src/http/flows.routes";
import { metricsRoutes } from "../../src/http/metrics.routes";
import { workersRoutes } from "../../src/http/workers.routes";
import { pinResetRoutes } from "../../src/http/pin-reset.routes";
import { verifyRoutes } from "../../src/http/verify.routes";
import { templatesRoutes } from "../../src/http/templates.routes";
import { limitsRoutes } from "../../src/http/limits.routes";
import { flowDocumentSchema, stepSchema, triggerSchema } from "../../src/flows/schema";
import { PIN_RESET_PATH } from "../../src/journeys/pin.actions";
import { OTP_ERRORS } from "../../src/otp/errors";

/**
 * docs/openapi.yaml is hand-written: these checks keep it honest. It must parse as OpenAPI 3.1, every $ref must
 * resolve, every route the Verify, admin, flows, conversation, metrics, contacts and PIN reset routers register must
 * be documented, and every error code of the Verify API's catalogue and of the HTTP layer must be in the Error
 * schema's enum. No database or Redis is needed.
 */
const file = join(__dirname, "..", "..", "docs", "openapi.yaml");
const doc = parse(readFileSync(file, "utf8")) as Record<string, any>;

const HTTP_METHODS = ["get", "put", "post", "delete", "patch", "options", "head", "trace"];

/** Every `$ref` string in the document, with where it was found. */
function collectRefs(node: unknown, at: string, out: Array<{ ref: string; at: string }> = []): Array<{ ref: string; at: string }> {
  if (Array.isArray(node)) node.forEach((v, i) => collectRefs(v, `${at}/${i}`, out));
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") out.push({ ref: v, at });
      else collectRefs(v, `${at}/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`, out);
    }
  }
  return out;
}

/** Resolves a local JSON pointer (`#/components/schemas/X`); undefined when it does not. */
function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (!node || typeof node !== "object" || !(key in (node as object))) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The (method, path) pairs a router registers, read from its stack; `:id` becomes `{id}`. */
function routesOf(router: Router, mount: string): Array<{ method: string; path: string }> {
  const out: Array<{ method: string; path: string }> = [];
  for (const layer of (router as unknown as { stack: Array<{ route?: { path: string | string[]; methods: Record<string, boolean> } }> }).stack) {
    if (!layer.route) continue;
    const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
    for (const p of paths) {
      for (const [method, on] of Object.entries(layer.route.methods)) {
        if (on && method !== "_all") out.push({ method, path: mount + p.replace(/:([A-Za-z0-9_]+)/g, "{$1}") });
      }
    }
  }
  return out;
}

const unused = new Proxy({}, { get: () => () => { throw new Error("not used when building routers"); } });

describe("docs/openapi.yaml", () => {
  it("parses and is an OpenAPI 3.1 document", () => {
    expect(doc).toBeInstanceOf(Object);
    expect(String(doc.openapi)).toMatch(/^3\.1\.\d+$/);
    expect(doc.info?.title).toEqual(expect.any(String));
    expect(doc.info?.version).toEqual(expect.any(String));
    expect(Object.keys(doc.paths ?? {}).length).toBeGreaterThan(0);
    expect(doc.components?.securitySchemes?.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("resolves every $ref", () => {
    const refs = collectRefs(doc, "#");
    expect(refs.length).toBeGreaterThan(20);
    const broken = refs.filter(({ ref }) => resolvePointer(doc, ref) === undefined);
    expect(broken).toEqual([]);
  });

  it("gives every operation at least one response, and every path parameter a definition", () => {
    const problems: string[] = [];
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const method of HTTP_METHODS) {
        const op = item[method];
        if (!op) continue;
        if (!op.responses || Object.keys(op.responses).length === 0) problems.push(`${method} ${path}: no responses`);
        const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p: any) => (p.$ref ? resolvePointer(doc, p.$ref) : p) as any);
        for (const n of names) {
          if (!params.some((p) => p?.in === "path" && p?.name === n && p?.required === true)) problems.push(`${method} ${path}: path parameter ${n} not defined`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("documents every route of the Verify, admin, flows, conversation, metrics, contacts and PIN reset routers", () => {
    const conversations = conversationRoutes({ prisma: unused as any, flows: unused as any, flowHandler: unused as any, outbox: unused as any, clock: unused as any, tenants: unused as any });
    const registered = [
      ...routesOf(verifyRoutes({ verifications: unused as any, prisma: unused as any }), "/v1"),
      ...routesOf(conversations.v1, "/v1"),
      ...routesOf(adminRoutes({ prisma: unused as any, keyring: unused as any, apiKeys: unused as any, tenants: unused as any, stepUp: { register() {} } as any }), "/admin"),
      ...routesOf(flowsRoutes({ prisma: unused as any, flows: unused as any, stepUp: { register() {} } as any }), "/admin"),
      ...routesOf(conversations.admin, "/admin"),
      ...routesOf(templatesRoutes({ prisma: unused as any, config: unused as any, budget: unused as any }), "/admin"),
      ...routesOf(limitsRoutes({ prisma: unused as any, messagingLimits: unused as any }), "/admin"),
      ...routesOf(metricsRoutes({ metrics: unused as any, adminApiKey: "unused", authFailed: async () => null }), ""),
      ...routesOf(workersRoutes({ health: unused as any }), "/admin"),
      ...routesOf(contactsRoutes({ prisma: unused as any, eventPublisher: unused as any }).v1, "/v1"),
      // the PIN reset router asks its logger for a child when it is built
      ...routesOf(pinResetRoutes({ prisma: unused as any, pins: unused as any, keyring: unused as any, clock: unused as any, logger: { child: () => unused } as any }), ""),
    ];
    expect(registered.length).toBeGreaterThanOrEqual(32);
    for (const r of [
      "post /v1/flows/{name}/start", "put /admin/flows/{name}", "post /admin/handoffs/release", "get /metrics",
      "get /v1/contacts/{phone}", "delete /v1/contacts/{phone}/logins/{id}", "post /v1/contacts/{phone}/reverify",
      "get /pin-reset/{token}", "post /pin-reset/{token}",
    ]) {
      expect(registered.map(({ method, path }) => `${method} ${path}`)).toContain(r);
    }
    const missing = registered.filter(({ method, path }) => !doc.paths[path]?.[method]).map(({ method, path }) => `${method.toUpperCase()} ${path}`);
    expect(missing).toEqual([]);
  });

  it("documents the routes of the route files (a second, source-level look)", () => {
    const found: string[] = [];
    // conversation.routes.ts builds two routers: `v1` (mounted at /v1) and `admin` (mounted at /admin);
    // contacts.routes.ts builds `v1` (mounted at /v1); pin-reset.routes.ts is mounted at the root
    const files: Array<[file: string, router: string, mount: string]> = [
      ["verify.routes.ts", "router", "/v1"],
      ["admin.routes.ts", "router", "/admin"],
      ["flows.routes.ts", "router", "/admin"],
      ["conversation.routes.ts", "v1", "/v1"],
      ["conversation.routes.ts", "admin", "/admin"],
      ["metrics.routes.ts", "router", ""],
      ["workers.routes.ts", "router", "/admin"],
      ["webhook.routes.ts", "router", ""],
      ["health.routes.ts", "router", ""],
      ["contacts.routes.ts", "v1", "/v1"],
      ["pin-reset.routes.ts", "router", ""],
      ["templates.routes.ts", "router", "/admin"],
      ["limits.routes.ts", "router", "/admin"],
    ];
    // constants that route paths written as template literals use (`${PIN_RESET_PATH}/:token`)
    const constants: Record<string, string> = { PIN_RESET_PATH };
    for (const [f, router, mount] of files) {
      const src = readFileSync(join(__dirname, "..", "..", "src", "http", f), "utf8");
      const re = new RegExp(`\\b${router}\\.(get|post|put|patch|delete)\\(\\s*(?:"([^"]+)"|\`([^\`]+)\`)`, "g");
      const before = found.length;
      for (const m of src.matchAll(re)) {
        const path = (m[2] ?? m[3]!).replace(/\$\{([A-Za-z0-9_]+)\}/g, (all, name: string) => constants[name] ?? all);
        expect(path).not.toContain("${");
        found.push(`${m[1]} ${mount}${path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`);
      }
      expect(`${f} (${router}): ${found.length - before} routes`).not.toMatch(/: 0 routes$/);
    }
    expect(found.length).toBeGreaterThanOrEqual(36);
    expect(found).toEqual(expect.arrayContaining(["post /v1/contacts/{phone}/logins", "post /pin-reset/{token}"]));
    const missing = found.filter((r) => {
      const [method, path] = r.split(" ") as [string, string];
      return !doc.paths[path]?.[method];
    });
    expect(missing).toEqual([]);
  });

  it("lists every error code of OTP_ERRORS in the Error schema's enum", () => {
    const codeSchema = doc.components.schemas.Error.properties.error.properties.code;
    const resolved = (codeSchema.$ref ? resolvePointer(doc, codeSchema.$ref) : codeSchema) as { enum?: string[] };
    expect(Array.isArray(resolved.enum)).toBe(true);
    const missing = Object.keys(OTP_ERRORS).filter((c) => !resolved.enum!.includes(c));
    expect(missing).toEqual([]);
  });

  it("lists the ApiError codes the HTTP layer uses in the Error schema's enum", () => {
    const enumValues = (doc.components.schemas.ErrorCode.enum ?? []) as string[];
    const dir = join(__dirname, "..", "..", "src", "http");
    const codes = new Set<string>();
    const files = [
      "verify.routes.ts", "admin.routes.ts", "auth.ts", "errors.ts", "idempotency.ts", "webhook.routes.ts",
      "flows.routes.ts", "conversation.routes.ts", "metrics.routes.ts", "contacts.routes.ts", "pin-reset.routes.ts", "workers.routes.ts",
      "templates.routes.ts", "limits.routes.ts",
    ];
    for (const f of files) {
      const src = readFileSync(join(dir, f), "utf8");
      for (const m of src.matchAll(/new ApiError\(\s*\d{3},\s*"([a-z_]+)"/g)) codes.add(m[1]!);
      for (const m of src.matchAll(/sendError\(\s*res,\s*[^,]+,\s*"([a-z_]+)"/g)) codes.add(m[1]!);
      // codes kept in a constant and passed on (pin-reset.routes.ts: `const GONE = { code: "link_gone", … }`)
      for (const m of src.matchAll(/\{\s*code:\s*"([a-z_]+)"/g)) codes.add(m[1]!);
    }
    expect(codes.size).toBeGreaterThan(10);
    // the codes of the flows, conversation, metrics, contacts and PIN reset routes in particular
    expect([...codes]).toEqual(expect.arrayContaining([
      "invalid_flow", "flow_not_found", "unsupported_media_type", "handed_off", "not_handed_off", "unauthorized",
      "contact_not_found", "login_not_found", "login_exists", "link_gone",
    ]));
    expect([...codes].filter((c) => !enumValues.includes(c))).toEqual([]);
  });

  it("describes the flow document: its fields, every trigger and every step type with its fields (src/flows/schema.ts)", () => {
    const schemas = doc.components.schemas;
    const fieldsOf = (z: any) => Object.keys(z.shape).sort();
    const requiredOf = (z: any) => Object.entries<any>(z.shape).filter(([, v]) => !v.safeParse(undefined).success).map(([k]) => k).sort();
    expect(Object.keys(schemas.FlowDocument.properties).sort()).toEqual(fieldsOf(flowDocumentSchema));
    const problems: string[] = [];
    const mapping = schemas.FlowStep.discriminator.mapping as Record<string, string>;
    const stepTypes = (stepSchema as any).options.map((o: any) => o.shape.type.value as string);
    expect(Object.keys(mapping).sort()).toEqual([...stepTypes].sort());
    expect(schemas.FlowStep.oneOf.map((r: any) => r.$ref).sort()).toEqual(Object.values(mapping).sort());
    for (const z of (stepSchema as any).options) {
      const type = z.shape.type.value as string;
      const s = resolvePointer(doc, mapping[type] ?? "") as any;
      if (!s) continue;
      if (s.properties?.type?.const !== type) problems.push(`step ${type}: type is not const ${type}`);
      if (JSON.stringify(Object.keys(s.properties).sort()) !== JSON.stringify(fieldsOf(z))) problems.push(`step ${type}: fields ${Object.keys(s.properties)} vs ${fieldsOf(z)}`);
      if (JSON.stringify([...s.required].sort()) !== JSON.stringify(requiredOf(z))) problems.push(`step ${type}: required ${s.required} vs ${requiredOf(z)}`);
    }
    for (const z of (triggerSchema as any).options) {
      const type = z.shape.type.value as string;
      const s = schemas.FlowTrigger.oneOf.find((t: any) => t.properties?.type?.const === type);
      if (!s) problems.push(`trigger ${type}: not documented`);
      else if (JSON.stringify(Object.keys(s.properties).sort()) !== JSON.stringify(fieldsOf(z))) problems.push(`trigger ${type}: fields differ`);
    }
    expect(problems).toEqual([]);
  });

  it("describes every field the presenter returns in the Verification schema", () => {
    const props = Object.keys(doc.components.schemas.Verification.properties);
    const src = readFileSync(join(__dirname, "..", "..", "src", "otp", "presenter.ts"), "utf8");
    const body = src.slice(src.indexOf("return {"), src.indexOf("sendCodeAttempts:") + "sendCodeAttempts:".length)
      + src.slice(src.indexOf("createdAt: v.createdAt"));
    const fields = [...body.matchAll(/^\s{4}(?:\.\.\.\(extra\.valid[^{]*\{\s*)?([a-zA-Z]+):/gm)].map((m) => m[1]!);
    expect(fields).toEqual(expect.arrayContaining(["id", "to", "status", "expiresAt", "sendCodeAttempts", "endedAt"]));
    expect(fields.filter((f) => !props.includes(f))).toEqual([]);
    expect(props).toContain("valid");
  });
});
