import { isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import { parseFlowData, validateFlow, type FlowError, type FlowValidation } from "../../flows/schema";

export interface LocatedFlowError extends FlowError {
  /** 1-based line in the document the person edits; null when the path cannot be found in it */
  line: number | null;
}

/** "steps[2].buttons[0].next" → ["steps", 2, "buttons", 0, "next"]; "(root)" → []. */
export function splitPath(path: string): (string | number)[] {
  if (!path || path === "(root)") return [];
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * The line of a validation path in the source text (JSON is YAML, so one parser gives positions for both): the key's
 * line when the key exists, else the nearest enclosing node's (a missing field points at its object).
 */
export function lineOfPath(text: string, path: string, parsed?: Document): number | null {
  const doc = parsed ?? parseDocument(text, { keepSourceTokens: false });
  let node: unknown = doc.contents;
  let offset: number | undefined = (doc.contents as Node | null)?.range?.[0];
  for (const seg of splitPath(path)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) break;
      offset = (isScalar(pair.key) ? pair.key.range?.[0] : undefined) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset === undefined ? null : lineAt(text, offset);
}

/** A syntax error's line, from the parser's message ("line 3", or JSON's "position 45"), else from the YAML parser. */
function syntaxLine(text: string, message: string): number | null {
  const line = /\(line (\d+)/.exec(message) ?? /line (\d+)/.exec(message);
  if (line) return Number(line[1]);
  const pos = /position (\d+)/.exec(message);
  if (pos) return lineAt(text, Number(pos[1]));
  // V8's JSON errors do not always say where: the YAML parser (JSON is YAML) does
  try {
    return parseDocument(text).errors[0]?.linePos?.[0]?.line ?? null;
  } catch {
    return null;
  }
}

/**
 * Validates a flow document as the admin API will on publish, each error with its line in `text`. The text goes
 * through the pre-scan (depth, indentation, size) and is parsed once (parseFlowData); the YAML document that gives
 * the lines is that parse (for JSON: one YAML parse, only when there are errors to place), shared by every error.
 */
export function validateFlowSource(
  text: string,
  format: "json" | "yaml",
  /** the name it is published under: a document without a name takes it, one with another name is refused (as PUT does) */
  pathName?: string,
): { ok: true; name: string } | { ok: false; errors: LocatedFlowError[] } {
  const parsed = parseFlowData(text, format);
  if (!parsed.ok) {
    // refused by the pre-scan: no parser runs at all (and no line is looked for)
    const scanned = parsed.errors.every((e) => /: (nested too deeply \(more than|indented more than|longer than) /.test(e.message));
    return { ok: false, errors: parsed.errors.map((e) => ({ ...e, line: scanned ? null : syntaxLine(text, e.message) })) };
  }
  let data = parsed.data;
  if (pathName && data && typeof data === "object" && !Array.isArray(data) && (data as { name?: unknown }).name === undefined) data = { ...data, name: pathName };
  let r: FlowValidation = validateFlow(data);
  if (r.ok && pathName && r.flow.name !== pathName) {
    r = { ok: false, errors: [{ path: "name", message: `the definition's name ${JSON.stringify(r.flow.name)} differs from the flow name '${pathName}'` }] };
  }
  if (r.ok) return { ok: true, name: r.flow.name };
  let doc: Document | null | undefined = parsed.doc;
  const located = (path: string): number | null => {
    try {
      doc ??= parseDocument(text, { keepSourceTokens: false });
      return lineOfPath(text, path, doc);
    } catch {
      doc = null;
      return null;
    }
  };
  return { ok: false, errors: r.errors.map((e) => ({ ...e, line: doc === null ? null : located(e.path) })) };
}
