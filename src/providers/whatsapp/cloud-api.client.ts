import axios, { AxiosError, type AxiosInstance } from "axios";
import { keepAliveAgents, type KeepAliveAgents } from "../keep-alive";
import { classifyMetaError } from "./errors";
import { tierFromGraph } from "../../limits/tiers";
import type { MarkAsReadBody, SendBody } from "./payload";

/**
 * The Cloud API port for sending: `POST {base}/{version}/{phone_number_id}/messages`.
 * Expected outcomes are values: HTTP and network errors never throw, they come back classified:
 * - `transient`: not accepted, may succeed later (429, 5xx, throughput and availability codes, and network
 *   errors before the request was written, e.g. connection refused);
 * - `permanent`: not accepted and never will be as it stands (see errors.ts);
 * - `unknown`: the request may have reached Meta but no answer came (timeout or connection lost after the
 *   request was written). Retrying it may send the message twice (at-least-once).
 * Neither the token nor message bodies are ever logged or put into a result.
 */
export type SendResult = SendAccepted | SendFailure;

export interface SendAccepted {
  ok: true;
  wamid: string;
  /** contacts[0].wa_id of Meta's answer (may differ from the `to` we sent) */
  waId?: string;
  httpStatus: number;
}

export interface SendFailure {
  ok: false;
  kind: "transient" | "permanent" | "unknown";
  httpStatus?: number;
  /** Meta's error.code */
  code?: number;
  /** Meta's error title / message (no personal data in Meta's texts, but we never add any) */
  title?: string;
  /** Meta's error.error_data.details */
  details?: string;
  /** from a Retry-After header (seconds or HTTP date) */
  retryAfterMs?: number;
  /** network error code (ECONNREFUSED, ECONNABORTED…) when there was no HTTP answer */
  networkError?: string;
}

export interface CloudApiClientOptions {
  baseUrl: string;
  version: string;
  timeoutMs: number;
  /** sockets per host; the default fits 1,000 messages per second at a few hundred ms each */
  maxSockets?: number;
}

/** Codes Node / axios give when nothing could have reached the server (the request was never written). */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ERR_INVALID_URL", "ERR_TLS_CERT_ALTNAME_INVALID", "CERT_HAS_EXPIRED", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"]);

export class CloudApiClient {
  private readonly http: AxiosInstance;
  private readonly agents: KeepAliveAgents;
  readonly baseUrl: string;
  readonly version: string;
  readonly timeoutMs: number;

  constructor(opts: CloudApiClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.version = opts.version;
    this.timeoutMs = opts.timeoutMs;
    const maxSockets = opts.maxSockets ?? 512;
    this.agents = keepAliveAgents({ maxSockets, maxFreeSockets: 64 });
    this.http = axios.create({
      baseURL: this.baseUrl,
      timeout: opts.timeoutMs,
      httpAgent: this.agents.httpAgent,
      httpsAgent: this.agents.httpsAgent,
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      validateStatus: () => true, // every HTTP answer is a value
      maxRedirects: 0,
      proxy: false,
      transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    });
  }

  messagesUrl(phoneNumberId: string): string {
    return `${this.baseUrl}/${this.version}/${encodeURIComponent(phoneNumberId)}/messages`;
  }

  /**
   * Sends one message. Never throws for HTTP or network errors. `opts.requestId` goes out as `X-Request-Id` (the id
   * of the webhook or API call behind the message; Meta ignores it, the sandbox and proxies record it).
   */
  async sendMessage(phoneNumberId: string, accessToken: string, body: SendBody, opts?: { requestId?: string }): Promise<SendResult> {
    const res = await this.post(phoneNumberId, accessToken, body, opts?.requestId);
    if (!res.ok) return res;
    const data = res.data as { messages?: Array<{ id?: unknown }>; contacts?: Array<{ wa_id?: unknown }> } | undefined;
    const wamid = data?.messages?.[0]?.id;
    if (typeof wamid !== "string" || wamid === "") {
      // a 2xx without a message id: Meta may have taken it, we cannot tell
      return { ok: false, kind: "unknown", httpStatus: res.httpStatus, title: "accepted without a message id" };
    }
    const waId = data?.contacts?.[0]?.wa_id;
    return { ok: true, wamid, waId: typeof waId === "string" ? waId : undefined, httpStatus: res.httpStatus };
  }

  /** Marks an inbound message (and the ones before it) as read. */
  async markAsRead(phoneNumberId: string, accessToken: string, wamid: string): Promise<{ ok: true } | SendFailure> {
    const body: MarkAsReadBody = { messaging_product: "whatsapp", status: "read", message_id: wamid };
    const res = await this.post(phoneNumberId, accessToken, body);
    return res.ok ? { ok: true } : res;
  }

  /**
   * Reads the messaging-limit tier of a number (docs/limits.md):
   * `GET {base}/{version}/{phone_number_id}?fields=whatsapp_business_manager_messaging_limit`, e.g. `TIER_250`.
   * Never throws for HTTP or network errors: they come back classified like a send's; a 2xx without a readable
   * tier is `unknown`.
   */
  async getMessagingLimit(phoneNumberId: string, accessToken: string): Promise<{ ok: true; tier: string; httpStatus: number } | SendFailure> {
    try {
      const res = await this.http.get(`/${this.version}/${encodeURIComponent(phoneNumberId)}`, {
        params: { fields: "whatsapp_business_manager_messaging_limit" },
        headers: { Authorization: `Bearer ${accessToken}` },
      });
      if (res.status < 200 || res.status >= 300) return failureFromResponse(res.status, res.data, res.headers["retry-after"]);
      const tier = tierFromGraph(res.data);
      return tier ? { ok: true, tier, httpStatus: res.status } : { ok: false, kind: "unknown", httpStatus: res.status, title: "answer without a messaging-limit tier" };
    } catch (err) {
      return failureFromNetworkError(err);
    }
  }

  /** Frees the keep-alive sockets (for shutdown and tests). */
  close(): void {
    this.agents.destroy();
  }

  private async post(phoneNumberId: string, accessToken: string, body: unknown, requestId?: string): Promise<{ ok: true; httpStatus: number; data: unknown } | SendFailure> {
    try {
      const res = await this.http.post(`/${this.version}/${encodeURIComponent(phoneNumberId)}/messages`, body, {
        headers: requestId ? { Authorization: `Bearer ${accessToken}`, "X-Request-Id": requestId } : { Authorization: `Bearer ${accessToken}` },
      });
      if (res.status >= 200 && res.status < 300) return { ok: true, httpStatus: res.status, data: res.data };
      return failureFromResponse(res.status, res.data, res.headers["retry-after"]);
    } catch (err) {
      return failureFromNetworkError(err);
    }
  }
}

/** Meta's error envelope: `{"error": {"message", "type", "code", "error_data": {"details"}, "error_subcode", "fbtrace_id"}}`. */
export function failureFromResponse(httpStatus: number, data: unknown, retryAfter: unknown, nowMs = Date.now()): SendFailure {
  const error = (data && typeof data === "object" ? (data as { error?: unknown }).error : undefined) as
    | { message?: unknown; code?: unknown; error_user_title?: unknown; error_data?: { details?: unknown } }
    | undefined;
  const rawCode = error?.code;
  const code = typeof rawCode === "number" ? rawCode : typeof rawCode === "string" && /^\d+$/.test(rawCode) ? Number(rawCode) : undefined;
  const title = typeof error?.error_user_title === "string" ? error.error_user_title : typeof error?.message === "string" ? error.message : undefined;
  const details = typeof error?.error_data?.details === "string" ? error.error_data.details : undefined;
  const cls = classifyMetaError(code, httpStatus);
  const retryAfterMs = parseRetryAfter(retryAfter, nowMs);
  return {
    ok: false,
    kind: cls.kind,
    httpStatus,
    ...(code !== undefined ? { code } : {}),
    ...(title !== undefined ? { title: title.slice(0, 500) } : {}),
    ...(details !== undefined ? { details: details.slice(0, 1000) } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

/**
 * No HTTP answer. If the request was never flushed to a socket (refused, DNS, TLS, or a timeout while still
 * connecting) nothing reached Meta: transient. Otherwise Meta may have accepted it: unknown.
 */
export function failureFromNetworkError(err: unknown): SendFailure {
  const e = err as AxiosError & { request?: { writableFinished?: boolean } };
  const networkError = typeof e?.code === "string" ? e.code : "EUNKNOWN";
  const written = e?.request?.writableFinished === true;
  if (NOT_SENT_CODES.has(networkError) || !written) {
    return { ok: false, kind: "transient", networkError, title: `network error before the request was sent (${networkError})` };
  }
  const timedOut = networkError === "ETIMEDOUT" || networkError === "ECONNABORTED";
  return { ok: false, kind: "unknown", networkError, title: timedOut ? "no answer before the timeout" : `connection lost after the request was sent (${networkError})` };
}

/** Retry-After: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: unknown, nowMs = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return Math.round(v * 1000);
  if (typeof v !== "string" || v.trim() === "") return undefined;
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const at = Date.parse(s);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
