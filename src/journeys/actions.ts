import type { ActionContext, ActionExecutor } from "../flows/flow.handler";

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

/**
 * Actions that change who a customer is or how they prove it: a flow holding one of them is published by a tenant
 * key only with step-up (src/http/flows.routes.ts), and in a flow started from the API (`POST /v1/flows/{name}/start`)
 * one runs only after the customer verified in that chat (an approved code to their own number, or their PIN):
 * the API alone never marks a customer verified, moves their number, removes their PIN or sets their recovery email.
 */
export const SENSITIVE_ACTIONS: ReadonlySet<string> = new Set(["mark_verified", "change_number", "remove_pin", "set_recovery_email", "clear_reverify"]);

/** The sensitive actions a flow definition's steps can run (empty: none). */
export function sensitiveActionsOf(definition: { steps: readonly unknown[] }): string[] {
  const found = new Set<string>();
  for (const s of definition.steps) {
    const step = s as { type?: unknown; action?: unknown };
    if (step?.type === "action" && typeof step.action === "string" && SENSITIVE_ACTIONS.has(step.action)) found.add(step.action);
  }
  return [...found];
}

/**
 * Who an action's audit entry names. In a session the business started from the API it is that key (through the
 * flow), never the customer: the customer did not ask for it. Otherwise `customerSide` (the customer, or the flow).
 */
export function actionActor(ctx: Pick<ActionContext, "flow" | "startedBy">, customerSide: string): string {
  return ctx.startedBy ? `flow:${ctx.flow} (started by ${ctx.startedBy})` : customerSide;
}
