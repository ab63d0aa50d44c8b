import type { ActionExecutor } from "../flows/flow.handler";

/**
 * The actions journeys' `action` steps run (src/flows/schema.ts ACTIONS). Each lives in its own module in this
 * folder and is registered here; an action missing from the registry takes the step's error branch.
 */
export type ActionRegistry = Partial<Record<string, ActionExecutor>>;

export function mergeActions(...groups: ActionRegistry[]): Record<string, ActionExecutor> {
  const out: Record<string, ActionExecutor> = {};
  for (const g of groups) for (const [k, v] of Object.entries(g)) if (v) out[k] = v;
  return out;
}
