import { fbtraceId } from "./ids";

/**
 * Meta's error catalogue, as far as the sandbox uses it: code → HTTP status, title, default details.
 *
 * Sources (looked up for this sandbox):
 * - HTTP status per code: the table on developers.facebook.com/documentation/business-messaging/whatsapp/support/
 *   error-codes (mirrored with its "HTTP Status Code" column by developers.aivo.co/engage and in a public PHP copy of
 *   the table): 190 → 401, 100/131008/131009/131026/131047/131056/130429/132000/131062 → 400, 131000 → 500,
 *   132001 → 404. 131016 is 503 on the current page (quoted as "131016 – Service unavailable … 503 – Service
 *   Unavailable" by learn.doubletick.io); an older copy of the table said 500 — both are 5xx, we follow the current one.
 * - Envelope: `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":
 *   {"messaging_product":"whatsapp","details":"…"},"fbtrace_id":"…"}}` (same page; `error_subcode` is not sent in v16+).
 * - Details texts: 132000 "body: number of localizable_params (0) does not match the expected number of params (1)",
 *   132001 "template name (x) does not exist in en_US", 131008 "Button at index 0 of type Url requires a parameter"
 *   (shridarpatil/whatomate #501, ../shared/docs/cloud-api.md §3), 131062 for BSUID recipients of auth templates
 *   (dualhook.com/docs/contacts-bsuid-api-changes).
 * - Graph-level errors (190, unknown object id 100) carry no `error_data`: they come from the Graph layer, not
 *   from WhatsApp; a bot must not depend on `error_data` being there.
 */
interface CatalogueEntry {
  http: number;
  title: string;
  details: string;
}

export const META_ERRORS = {
  100: { http: 400, title: "Invalid parameter", details: "The request included one or more unsupported or misspelled parameters." },
  130429: { http: 400, title: "Rate limit hit", details: "Cloud API message throughput has been reached." },
  131000: { http: 500, title: "Something went wrong", details: "Message failed to send due to an unknown error." },
  131008: { http: 400, title: "Required parameter is missing", details: "The request is missing a required parameter." },
  131009: { http: 400, title: "Parameter value is not valid", details: "One or more parameter values are invalid." },
  131016: { http: 503, title: "Service unavailable", details: "A service is temporarily unavailable." },
  131026: { http: 400, title: "Message undeliverable", details: "Message Undeliverable." },
  131047: {
    http: 400,
    title: "Re-engagement message",
    details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
  },
  131051: { http: 400, title: "Unsupported message type", details: "Message type is not currently supported." },
  131056: {
    http: 400,
    title: "(Business Account, Consumer Account) pair rate limit hit",
    details: "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
  },
  131062: { http: 400, title: "Business-scoped User ID recipients are not supported for this message.", details: "Authentication templates require a phone number recipient." },
  132000: { http: 400, title: "Number of parameters does not match the expected number of params", details: "" },
  132001: { http: 404, title: "Template name does not exist in the translation", details: "" },
  // WA/support/error-codes: "Template is Paused" / "Template is Disabled" (low quality), HTTP 400, not retryable
  132015: { http: 400, title: "Template is Paused", details: "Template is paused due to low quality so it cannot be sent in a template message." },
  132016: { http: 400, title: "Template is Disabled", details: "Template has been paused too many times due to low quality and is now permanently disabled." },
  190: { http: 401, title: "Invalid OAuth access token - Cannot parse access token", details: "" },
} satisfies Record<number, CatalogueEntry>;

export type MetaErrorCode = keyof typeof META_ERRORS;

export interface MetaErrorBody {
  error: {
    message: string;
    type: string;
    code: number;
    error_subcode?: number;
    error_data?: { messaging_product: "whatsapp"; details: string };
    fbtrace_id: string;
  };
}

/** A synchronous Graph error: HTTP status and Meta's JSON. */
export class MetaError {
  constructor(
    readonly httpStatus: number,
    readonly body: MetaErrorBody,
    /** extra response headers (Retry-After) */
    readonly headers: Record<string, string> = {},
  ) {}

  get code(): number {
    return this.body.error.code;
  }
}

/** A WhatsApp-layer error (with `error_data`). */
export function metaError(code: MetaErrorCode, details?: string, headers?: Record<string, string>): MetaError {
  const entry: CatalogueEntry = META_ERRORS[code];
  return new MetaError(
    entry.http,
    {
      error: {
        message: `(#${code}) ${entry.title}`,
        type: "OAuthException",
        code,
        error_data: { messaging_product: "whatsapp", details: details ?? entry.details },
        fbtrace_id: fbtraceId(),
      },
    },
    headers,
  );
}

/** Graph rejected the token (wrong, unknown or expired): 190, HTTP 401, no error_data. */
export function authError(expired: boolean): MetaError {
  return new MetaError(401, {
    error: expired
      ? {
          message: "Error validating access token: Session has expired.",
          type: "OAuthException",
          code: 190,
          error_subcode: 463,
          fbtrace_id: fbtraceId(),
        }
      : { message: `${META_ERRORS[190].title}`, type: "OAuthException", code: 190, fbtrace_id: fbtraceId() },
  });
}

/**
 * A plain HTTP 429 from the Graph layer (application request limit, code 4, no `error_data`): what a proxy or Graph's
 * own throttling answers, with or without `Retry-After`. A client must retry it by the HTTP status alone.
 */
export function throttledError(headers: Record<string, string> = {}): MetaError {
  return new MetaError(
    429,
    { error: { message: "(#4) Application request limit reached", type: "OAuthException", code: 4, fbtrace_id: fbtraceId() } },
    headers,
  );
}

/** Graph does not know the object id in the path (an unknown phone number id): 100, subcode 33, HTTP 400. */
export function unknownObjectError(id: string): MetaError {
  return new MetaError(400, {
    error: {
      message: `Unsupported post request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
      type: "GraphMethodException",
      code: 100,
      error_subcode: 33,
      fbtrace_id: fbtraceId(),
    },
  });
}

/** The `errors[]` element of a `failed` status webhook (WA/webhooks/reference/messages/status). */
export function statusError(code: MetaErrorCode): { code: number; title: string; message: string; error_data: { details: string }; href: string } {
  const entry: CatalogueEntry = META_ERRORS[code];
  return {
    code,
    title: entry.title,
    message: entry.title,
    error_data: { details: entry.details },
    href: "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
  };
}
