import axios, { AxiosError } from "axios";
import { signRequest, SIGNATURE_HEADER } from "../events/signature";
import { assertNoSecrets } from "../shared/no-secrets";
import { checkTargetUrl, isBlockedAddressError, normaliseHost, safeRequestOptions } from "../shared/safe-http";

export { isNonPublicAddress } from "../shared/ip";

/**
 * The `http` flow step: one signed call to the business's own endpoint, whose JSON answer feeds the flow.
 *
 * - Only hosts in the tenant's `flows.httpAllowedHosts`: exact names, or `*.example.com` for any subdomain of
 *   example.com (not example.com itself, never `evil-example.com`). https only; in development mode only
 *   (`dev`, NODE_ENV=development) also http to 127.0.0.1, localhost and [::1], which must be allowed like any
 *   other host. No credentials in the URL.
 * - The address rule is src/shared/safe-http.ts (shared with event deliveries): https hosts must resolve to public
 *   addresses only (no private, link-local, loopback, CGNAT, multicast…), checked at connect time (no DNS
 *   rebinding window): an allowed name cannot be used to reach internal services.
 * - Never follows redirects (a 3xx is an `http_error`), ignores proxy environment variables, caps the answer at
 *   256 KB and the whole call at `timeoutMs` (a total deadline, not only socket idleness).
 * - The answer must be a JSON object (an array, a scalar, HTML → `invalid_response`); 204 counts as `{}`.
 * - POST sends `{ flow, step, tenantId, contact, variables }`; GET sends no body. Either way the request carries
 *   `X-Wabot-Signature: t=<unix>,v2=<hex HMAC-SHA256(secret, "<t>.<METHOD>.<path?query>.<body>")>` (signRequest,
 *   checked with verifyRequest: src/events/signature.ts), so a signature covers the method and the request target
 *   too, `X-Wabot-Flow`, `X-Wabot-Step` and `Idempotency-Key` (one per step execution, the same on its retries;
 *   not part of what is signed: src/flows/flow-call.ts). The URL's `{{var}}` values were percent-encoded as components by the
 *   engine (renderUrl, src/flows/text.ts).
 * - `contact` and `variables` must not carry secrets (a PIN, a code, a password): assertNoSecrets throws
 *   SecretInDataError (a bug in the caller, not an outcome of the call).
 */
export const MAX_RESPONSE_BYTES = 256 * 1024;

export type HttpCallError = "host_not_allowed" | "timeout" | "http_error" | "network_error" | "invalid_response";
export type HttpCallResult = { ok: true; status: number; data: Record<string, unknown> } | { ok: false; error: HttpCallError; status?: number };

export interface HttpCallInput {
  url: string;
  method: "GET" | "POST";
  /** the contact and variables the step sends (flow, step and tenantId are added from the fields below) */
  body: { contact?: Record<string, unknown>; variables?: Record<string, unknown> };
  timeoutMs: number;
  /** the tenant's settings.flows.httpAllowedHosts */
  allowedHosts: readonly string[];
  /** the tenant's signing secret (the events callback secret) */
  secret: string;
  flow: string;
  step: string;
  tenantId: string;
  /** the signing time */
  now: Date;
  /** development mode (NODE_ENV=development): plain http to an allow-listed loopback host is allowed */
  dev?: boolean;
  /** sent as `Idempotency-Key`: the same on every retry of one step execution, another for the next execution */
  idempotencyKey?: string;
}

/** True when `hostname` is allowed by one of `allowedHosts` (exact, or `*.suffix` for strict subdomains). */
export function hostAllowed(hostname: string, allowedHosts: readonly string[]): boolean {
  const host = normaliseHost(hostname);
  if (!host) return false;
  return allowedHosts.some((raw) => {
    const pattern = normaliseHost(raw);
    if (!pattern) return false;
    if (pattern.startsWith("*.")) {
      const suffix = pattern.slice(1); // ".example.com"
      return suffix.length > 1 && !suffix.slice(1).includes("*") && host.endsWith(suffix) && host.length > suffix.length;
    }
    return !pattern.includes("*") && host === pattern;
  });
}

function checkUrl(raw: string, allowedHosts: readonly string[], dev: boolean): URL | null {
  const check = checkTargetUrl(raw, { dev });
  if (!check.ok) return null;
  return hostAllowed(check.url.hostname, allowedHosts) ? check.url : null;
}

export async function callBusinessEndpoint(input: HttpCallInput): Promise<HttpCallResult> {
  const contact = input.body.contact ?? {};
  const variables = input.body.variables ?? {};
  assertNoSecrets({ contact, variables }, { what: `http step ${input.flow}/${input.step}` });

  const dev = input.dev === true;
  const url = checkUrl(input.url, input.allowedHosts, dev);
  if (!url) return { ok: false, error: "host_not_allowed" };

  const payload = input.method === "POST" ? JSON.stringify({ flow: input.flow, step: input.step, tenantId: input.tenantId, contact, variables }) : "";
  const t = Math.floor(input.now.getTime() / 1000);
  const headers: Record<string, string> = {
    Accept: "application/json",
    "User-Agent": "wabot-flows/1",
    [SIGNATURE_HEADER]: signRequest(input.secret, { method: input.method, pathAndQuery: `${url.pathname}${url.search}`, body: payload }, t),
    "X-Wabot-Flow": input.flow,
    "X-Wabot-Step": input.step,
  };
  if (input.idempotencyKey) headers["Idempotency-Key"] = input.idempotencyKey;
  if (input.method === "POST") headers["Content-Type"] = "application/json";

  const timeoutMs = Math.max(1, Math.floor(input.timeoutMs));
  let res;
  try {
    res = await axios.request<ArrayBuffer>({
      url: url.toString(),
      method: input.method,
      data: input.method === "POST" ? payload : undefined,
      headers,
      timeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
      ...safeRequestOptions({ dev }),
      maxContentLength: MAX_RESPONSE_BYTES,
      maxBodyLength: MAX_RESPONSE_BYTES,
      responseType: "arraybuffer",
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
    });
  } catch (err) {
    return { ok: false, error: classify(err) };
  }

  if (res.status < 200 || res.status >= 300) return { ok: false, error: "http_error", status: res.status };
  const buf = Buffer.from(res.data ?? new ArrayBuffer(0));
  if (buf.length === 0 && res.status === 204) return { ok: true, status: res.status, data: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString("utf8"));
  } catch {
    return { ok: false, error: "invalid_response", status: res.status };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return { ok: false, error: "invalid_response", status: res.status };
  return { ok: true, status: res.status, data: parsed as Record<string, unknown> };
}

function classify(err: unknown): HttpCallError {
  const chain: unknown[] = [];
  for (let e: unknown = err; e && chain.length < 5; e = (e as { cause?: unknown }).cause) chain.push(e);
  if (isBlockedAddressError(err)) return "host_not_allowed";
  if (err instanceof AxiosError) {
    if (err.code === AxiosError.ERR_CANCELED || err.code === AxiosError.ECONNABORTED || err.code === AxiosError.ETIMEDOUT || err.code === "ETIMEDOUT") {
      return /maxContentLength/i.test(err.message) ? "invalid_response" : "timeout";
    }
    if (err.code === AxiosError.ERR_BAD_RESPONSE || /maxContentLength/i.test(err.message)) return "invalid_response";
  }
  if (chain.some((e) => (e as { name?: string }).name === "TimeoutError" || (e as { name?: string }).name === "AbortError")) return "timeout";
  return "network_error";
}
