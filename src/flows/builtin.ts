import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../shared/project-root";
import { jsonEqual, normaliseDefinition, type FlowStore } from "./flow-store";
import { parseFlowText, validateFlow, type FlowDefinition } from "./schema";

/** The built-in flow files shipped with the bot: <project>/flows (from the sources or the compiled build). */
export const BUILTIN_FLOWS_DIR = join(projectRoot(), "flows");

export const FLOW_FILE_RE = /\.(json|ya?ml)$/i;

export interface LoadedFlows {
  files: { file: string; flow: FlowDefinition }[];
  errors: { file: string; path: string; message: string }[];
}

/** Reads and validates every *.json|*.yaml|*.yml in `dir` (sorted by file name). A missing dir is an empty set. */
export function loadBuiltinFlows(dir: string = BUILTIN_FLOWS_DIR): LoadedFlows {
  const out: LoadedFlows = { files: [], errors: [] };
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => FLOW_FILE_RE.test(f)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return out;
    throw err;
  }
  const seen = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    if (!statSync(file).isFile()) continue;
    const r = parseFlowText(readFileSync(file, "utf8"), file);
    if (!r.ok) {
      for (const e of r.errors) out.errors.push({ file, ...e });
      continue;
    }
    const other = seen.get(r.flow.name);
    if (other) {
      out.errors.push({ file, path: "name", message: `flow '${r.flow.name}' is also defined in ${other}` });
      continue;
    }
    seen.set(r.flow.name, file);
    out.files.push({ file, flow: r.flow });
  }
  return out;
}

export interface InstallResult {
  /** published as a new version */
  installed: { name: string; version: number }[];
  /** already live, unchanged */
  unchanged: string[];
  /** the business published its own version (source "api"): left alone */
  overridden: string[];
}

/**
 * Publishes each built-in flow whose live definition differs (deep-equal after normalising), with source
 * "builtin". A flow the business published itself (any source but "builtin") is never overwritten. The decision
 * is taken under the flow's row lock, so processes starting together publish each change once.
 */
export async function installBuiltinFlows(store: FlowStore, tenantId: string, flows: { flow: FlowDefinition }[] | LoadedFlows): Promise<InstallResult> {
  const list = Array.isArray(flows) ? flows : flows.files;
  const result: InstallResult = { installed: [], unchanged: [], overridden: [] };
  for (const { flow } of list) {
    const wanted = normaliseDefinition(flow);
    let reason: "unchanged" | "overridden" | null = null;
    const r = await store.publish(tenantId, wanted, "system", "builtin", {
      skipIf: (current) => {
        if (!current) return false;
        if (current.source !== "builtin") return (reason = "overridden"), true;
        // compare normalised forms: the stored one validated again (the schema may have gained defaults since)
        const stored = validateFlow(current.definition);
        if (jsonEqual(stored.ok ? normaliseDefinition(stored.flow) : current.definition, wanted)) return (reason = "unchanged"), true;
        return false;
      },
    });
    if (!r.skipped) result.installed.push({ name: r.name, version: r.version });
    else if (reason === "overridden") result.overridden.push(r.name);
    else result.unchanged.push(r.name);
  }
  return result;
}
