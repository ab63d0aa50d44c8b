/**
 * How a Cloud API error decides an outbound message's fate. Meta publishes no "retryable" flag and says to build
 * on `error.code` (not titles, subcodes or the HTTP status), so this one table is our reading of its "possible
 * solutions" text (../shared/docs/cloud-api.md §4, WA/support/error-codes):
 *
 * - `transient`: the same request may succeed later: retry with backoff.
 * - `permanent`: it never will as it stands (bad request, policy, auth, undeliverable): fail the message at once.
 *
 * A code that is not in the table is judged by the HTTP status: 429, 408 and 5xx are transient, any other 4xx
 * permanent. A response that may have reached Meta without an answer (timeout, connection lost after the request
 * was written) is `unknown`; that is decided by the client, not here.
 */
export type ErrorKind = "transient" | "permanent";

export interface ErrorClass {
  kind: ErrorKind;
  /** what Meta's code means, in a few words (for logs and docs) */
  meaning: string;
  /** 131056: the per-recipient pair rate; retry that recipient only, after 4^X seconds */
  pairRate?: true;
}

function range(from: number, to: number, cls: ErrorClass): Array<[number, ErrorClass]> {
  const out: Array<[number, ErrorClass]> = [];
  for (let c = from; c <= to; c++) out.push([c, cls]);
  return out;
}

const T = (meaning: string, extra: Partial<ErrorClass> = {}): ErrorClass => ({ kind: "transient", meaning, ...extra });
const P = (meaning: string): ErrorClass => ({ kind: "permanent", meaning });

/** Meta error code → class. Exported so docs, metrics and tests read the same table the worker uses. */
export const META_ERROR_CLASSES: ReadonlyMap<number, ErrorClass> = new Map<number, ErrorClass>([
  // throughput and availability: retry with backoff
  [130429, T("Cloud API throughput (messages per second per number) reached")],
  [131056, T("pair rate limit: too many messages to the same recipient", { pairRate: true })],
  [131000, T("failed to send due to an unknown error")],
  [131016, T("a service is temporarily unavailable")],
  [2, T("temporary downtime or overload")],
  [133004, T("server temporarily unavailable")],
  [131057, T("business account in maintenance (e.g. throughput upgrade)")],
  [4, T("app API call rate limit")],
  [80007, T("WhatsApp Business Account rate limit")],
  // authentication and permissions: rotate the token / fix access, never hot-retry
  [0, P("authentication failed")],
  [190, P("access token expired or invalid")],
  [3, P("capability or permission missing")],
  [10, P("permission denied")],
  ...range(200, 299, P("permission missing")),
  // the request itself is wrong
  [100, P("invalid or unsupported parameter")],
  [131008, P("required parameter missing")],
  [131009, P("parameter value invalid")],
  [131021, P("sender and recipient are the same number")],
  ...range(131051, 131053, P("unsupported message type / media download / media upload error")),
  // templates
  [132000, P("template parameter count mismatch")],
  [132001, P("template does not exist in that language or is not approved")],
  [132005, P("translated template text too long")],
  [132007, P("template content policy violation")],
  [132012, P("template parameter format mismatch")],
  [132015, P("template paused for low quality")],
  [132016, P("template permanently disabled")],
  // the recipient, the window and policy
  [131026, P("message undeliverable (not a WhatsApp user, terms not accepted, old client)")],
  [131047, P("re-engagement: more than 24 hours since the user last wrote; send a template")],
  [131048, P("spam rate limit: number restricted; pause and check quality")],
  [131049, P("not delivered to maintain ecosystem engagement (per-user marketing limit)")],
  [131050, P("user stopped marketing messages")],
  [130403, P("business blocked by the user")],
  [130472, P("user is part of an experiment")],
  [131031, P("business account locked")],
  [368, P("temporarily blocked for policy violations")],
  [130497, P("business account restricted from messaging users in this country")],
  [131042, P("business eligibility / payment issue")],
  [131045, P("phone number not registered")],
  [131064, P("template classification limit")],
]);

export interface Classification extends ErrorClass {
  /** whether the code was found in META_ERROR_CLASSES (false: judged by the HTTP status) */
  known: boolean;
}

/** Classifies a Cloud API error response by Meta's code first, else by the HTTP status. */
export function classifyMetaError(code: number | undefined, httpStatus: number | undefined): Classification {
  if (code !== undefined) {
    const hit = META_ERROR_CLASSES.get(code);
    if (hit) return { ...hit, known: true };
  }
  if (httpStatus === 429) return { kind: "transient", meaning: "HTTP 429 Too Many Requests", known: false };
  if (httpStatus === 408) return { kind: "transient", meaning: "HTTP 408 Request Timeout", known: false };
  if (httpStatus !== undefined && httpStatus >= 500) return { kind: "transient", meaning: `HTTP ${httpStatus}`, known: false };
  if (httpStatus !== undefined && httpStatus >= 400) return { kind: "permanent", meaning: `HTTP ${httpStatus}`, known: false };
  return { kind: "transient", meaning: "unrecognised error response", known: false };
}

export function isPairRateError(code: number | undefined): boolean {
  return code !== undefined && META_ERROR_CLASSES.get(code)?.pairRate === true;
}
