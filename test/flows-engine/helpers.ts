import { step, startState, type EngineContext, type EngineOutput, type EngineState, type EffectResult } from "../../src/flows/engine";
import { validateFlow, type FlowDefinition } from "../../src/flows/schema";

/** The test context: everything the pure engine may read from outside. */
export function ctx(overrides: Partial<EngineContext> = {}): EngineContext {
  return {
    now: new Date("2024-05-01T12:00:00Z"),
    locale: "en_US",
    windowOpen: true,
    contact: { name: "Ada", phone: "+14155550123" },
    digest: (s: string) => "d:" + s.split("").reverse().join(""),
    pinWeakness: (p: string) => (p === "123456" ? "too simple" : null),
    ...overrides,
  };
}

/** Validates a document (defaults applied) and fails loudly when it is not valid. */
export function flow(doc: Record<string, unknown>): FlowDefinition {
  const v = validateFlow({ name: "test-flow", ...doc });
  if (!v.ok) throw new Error("invalid test flow: " + JSON.stringify(v.errors));
  return v.flow;
}

/** A flow made of steps only. */
export function steps(...s: Record<string, unknown>[]): FlowDefinition {
  return flow({ steps: s });
}

export function start(def: FlowDefinition, c: EngineContext = ctx(), vars?: Record<string, unknown>): EngineOutput {
  return step(def, startState(def, 1), { kind: "start", vars }, c);
}

export function say(def: FlowDefinition, state: EngineState, text: string | null, c: EngineContext = ctx(), replyId: string | null = null): EngineOutput {
  return step(def, state, { kind: "message", text, replyId }, c);
}

export function tap(def: FlowDefinition, state: EngineState, replyId: string, c: EngineContext = ctx()): EngineOutput {
  return step(def, state, { kind: "message", text: null, replyId }, c);
}

export function result(def: FlowDefinition, state: EngineState, r: EffectResult, c: EngineContext = ctx()): EngineOutput {
  return step(def, state, { kind: "result", result: r }, c);
}

/** The bodies of the plain-text messages sent, in order. */
export function texts(out: EngineOutput): string[] {
  return out.effects.flatMap((e) => (e.type === "send" && e.content.type === "text" ? [(e.content as unknown as { text: { body: string } }).text.body] : []));
}

/** Every `send` effect's content, in order. */
export function contents(out: EngineOutput): Record<string, any>[] {
  return out.effects.flatMap((e) => (e.type === "send" ? [e.content as Record<string, any>] : []));
}

export function textContent(body: string) {
  return { type: "text", text: { body, preview_url: false } };
}
