import { RE2JS } from "re2js";

/**
 * Tenants' regular expressions (pattern triggers, `ask` text patterns, branch `matches`) run on RE2 (re2js, pure
 * JavaScript): matching is linear in the input, whatever the pattern, so `^(a+)+$` cannot stall the shared process
 * the way it does on a backtracking engine (V8's RegExp).
 *
 * - The syntax is JavaScript's as far as RE2 has it (translated by `RE2JS.translateRegExp`: `(?<name>…)`,
 *   `\u00e9`, `\u{1F600}`). RE2 has no backreferences (`\1`) and no lookarounds (`(?=…)`, `(?!…)`, `(?<=…)`,
 *   `(?<!…)`): such a pattern is refused when the flow is validated or published (`regexProblem`), with its path.
 *   `\d`, `\w`, `\s` and `\b` are ASCII-only in RE2.
 * - A pattern is compiled once and kept (a bounded cache keyed by pattern and flags: a flow version's patterns
 *   never change, so this is a per-version compilation shared by every message).
 * - Input longer than `MAX_REGEX_INPUT` characters never matches (bounded work per message, and no surprise from
 *   matching a truncated text).
 */
export const MAX_REGEX_INPUT = 4096;
const MAX_CACHED = 2000;

export interface RegexFlags {
  ignoreCase: boolean;
}

const cache = new Map<string, RE2JS | null>();

function compile(pattern: string, flags: RegexFlags): RE2JS {
  return RE2JS.compile(RE2JS.translateRegExp(pattern), flags.ignoreCase ? RE2JS.CASE_INSENSITIVE : 0);
}

/** The compiled pattern (cached), or null when RE2 cannot take it (a flow stored before the rule). */
function compiled(pattern: string, flags: RegexFlags): RE2JS | null {
  const key = `${flags.ignoreCase ? "i" : "-"}/${pattern}`;
  if (cache.has(key)) return cache.get(key)!;
  let re: RE2JS | null;
  try {
    re = compile(pattern, flags);
  } catch {
    re = null;
  }
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(key, re);
  return re;
}

/**
 * Why RE2 refuses `pattern`, for the validator's message; null when it compiles. Backreferences and lookarounds
 * are named as such.
 */
export function regexProblem(pattern: string): string | null {
  // RE2JS.translateRegExp would read `\k<name>` as the letters `k<name>`: a named backreference is refused as such
  if (hasNamedBackreference(pattern)) return "backreferences (\\1, \\k<name>) are not supported: patterns run on the linear-time RE2 engine";
  try {
    compile(pattern, { ignoreCase: true });
    return null;
  } catch (err) {
    const detail = err instanceof Error ? err.message.replace(/^error parsing regexp:\s*/, "").replace("`(?i)", "`") : "invalid";
    if (/\\[1-9]|\\k</.test(pattern)) return `backreferences (\\1, \\k<name>) are not supported: patterns run on the linear-time RE2 engine (${detail})`;
    if (/\(\?<?[=!]/.test(pattern)) return `lookarounds ((?=…), (?!…), (?<=…), (?<!…)) are not supported: patterns run on the linear-time RE2 engine (${detail})`;
    return `not a valid regular expression (RE2: ${detail})`;
  }
}

/** `\k<` outside a character class, not itself escaped. */
function hasNamedBackreference(pattern: string): boolean {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      if (!inClass && pattern[i + 1] === "k" && pattern[i + 2] === "<") return true;
      i++;
    } else if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
  }
  return false;
}

/**
 * Whether `pattern` matches anywhere in `input` (RegExp.prototype.test semantics), in linear time. False for an
 * input over MAX_REGEX_INPUT characters and for a pattern RE2 cannot take.
 */
export function regexTest(pattern: string, input: string, flags: RegexFlags): boolean {
  if (input.length > MAX_REGEX_INPUT || hasNamedBackreference(pattern)) return false;
  const re = compiled(pattern, flags);
  return re !== null && re.test(input);
}

/** The engine tenant patterns run on (tests assert it). */
export const REGEX_ENGINE = "re2js";
