import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import axios, { AxiosError } from "axios";
import { signEvent, SIGNATURE_HEADER } from "../events/signature";
import { assertNoSecrets } from "../shared/no-secrets";

/**
 * The `http` flow step: one signed call to the business's own endpoint, whose JSON answer feeds the flow.
 *
 * - Only hosts in the tenant's `flows.httpAllowedHosts`: exact names, or `*.example.com` for any subdomain of
 *   example.com (not example.com itself, never `evil-example.com`). https only; http only to 127.0.0.1,
 *   localhost and [::1] (development), which must be allowed like any other host. No credentials in the URL.
 * - https hosts must resolve to public addresses only (no private, link-local, loopback, CGNAT, multicast…),
 *   checked at connect time (no DNS rebinding window): an allowed name cannot be used to reach internal services.
 * - Never follows redirects (a 3xx is an `http_error`), ignores proxy environment variables, caps the answer at
 *   256 KB and the whole call at `timeoutMs` (a total deadline, not only socket idleness).
 * - The answer must be a JSON object (an array, a scalar, HTML → `invalid_response`); 204 counts as `{}`.
 * - POST sends `{ flow, step, tenantId, contact, variables }`; GET sends no body (the signature then covers the
 *   empty body). Either way the request carries `X-Wabot-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
 *   "<t>.<body>")>` (signEvent, the scheme of status events, checked with verifyEvent), `X-Wabot-Flow` and
 *   `X-Wabot-Step`.
 * - `contact` and `variables` must not carry secrets (a PIN, a code, a password): assertNoSecrets throws
 *   SecretInDataError (a bug in the caller, not an outcome of the call).
 */
export const MAX_RESPONSE_BYTES = 256 * 1024;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

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

function normaliseHost(h: string): string {
  let s = h.trim().toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (s.endsWith(".")) s = s.slice(0, -1);
  return s;
}

/** Addresses an https step must never reach (RFC 1918, loopback, link-local, CGNAT, ULA, multicast, reserved…). */
export function isNonPublicAddress(address: string): boolean {
  const kind = isIP(address);
  if (kind === 4) {
    const [a, b] = address.split(".").map(Number) as [number, number, number, number];
    return (
      a === 0 || a === 10 || a === 127 || a >= 224 || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 192 && b === 0) || (a === 198 && (b === 18 || b === 19))
    );
  }
  if (kind === 6) {
    const b = ipv6Bytes(address);
    if (!b) return true;
    const embedded = (at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
    const zeros = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
    // IPv4 inside IPv6, in any spelling (`::ffff:127.0.0.1` is written `::ffff:7f00:1` by the URL parser):
    // mapped ::ffff:0:0/96, compatible ::/96, NAT64 64:ff9b::/96 and 6to4 2002::/16 are judged by their IPv4 address
    if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return isNonPublicAddress(embedded(12));
    if (zeros(0, 12)) return true; // ::, ::1 and the deprecated IPv4-compatible addresses
    if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b) return true;
    if (b[0] === 0x20 && b[1] === 0x02) return isNonPublicAddress(embedded(2));
    return (
      (b[0]! & 0xfe) === 0xfc || // fc00::/7 unique local
      (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) || // fe80::/10 link-local
      (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) || // fec0::/10 site-local (deprecated)
      b[0] === 0xff || // multicast
      (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x0d && b[3] === 0xb8) || // 2001:db8::/32 documentation
      (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x00 && b[3] === 0x00) // 2001::/32 Teredo (tunnels to IPv4)
    );
  }
  return true;
}

/** The 16 bytes of an IPv6 address (with `::` and a dotted IPv4 tail expanded), or null when malformed. */
function ipv6Bytes(address: string): Uint8Array | null {
  let s = address.toLowerCase().replace(/^\[|\]$/g, "");
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (dotted) {
    const [p, q, r, t] = dotted.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, dotted.index)}${((p << 8) | q).toString(16)}:${((r << 8) | t).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

class BlockedAddressError extends Error {
  readonly code = "EWABOT_BLOCKED_ADDRESS";
}

/** dns.lookup that refuses non-public answers (used by the https agent, so the check holds at connect time). */
function publicOnlyLookup(hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, "", 0);
    const list = addresses as LookupAddress[];
    if (list.length === 0 || list.some((a) => isNonPublicAddress(a.address))) return callback(new BlockedAddressError(`${hostname} resolves to a non-public address`), "", 0);
    if (options.all) return callback(null, list);
    return callback(null, list[0]!.address, list[0]!.family);
  });
}

const httpsAgent = new https.Agent({ lookup: publicOnlyLookup as never, keepAlive: false });
const httpAgent = new http.Agent({ keepAlive: false });

function checkUrl(raw: string, allowedHosts: readonly string[]): URL | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if (u.username || u.password) return null;
  const host = normaliseHost(u.hostname);
  if (u.protocol === "http:") {
    if (!LOOPBACK_HOSTS.has(host)) return null;
  } else if (u.protocol !== "https:") {
    return null;
  } else if (isIP(host) && isNonPublicAddress(host)) {
    return null;
  }
  if (!hostAllowed(host, allowedHosts)) return null;
  u.hash = "";
  return u;
}

export async function callBusinessEndpoint(input: HttpCallInput): Promise<HttpCallResult> {
  const contact = input.body.contact ?? {};
  const variables = input.body.variables ?? {};
  assertNoSecrets({ contact, variables }, { what: `http step ${input.flow}/${input.step}` });

  const url = checkUrl(input.url, input.allowedHosts);
  if (!url) return { ok: false, error: "host_not_allowed" };

  const payload = input.method === "POST" ? JSON.stringify({ flow: input.flow, step: input.step, tenantId: input.tenantId, contact, variables }) : "";
  const t = Math.floor(input.now.getTime() / 1000);
  const headers: Record<string, string> = {
    Accept: "application/json",
    "User-Agent": "wabot-flows/1",
    [SIGNATURE_HEADER]: signEvent(input.secret, payload, t),
    "X-Wabot-Flow": input.flow,
    "X-Wabot-Step": input.step,
  };
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
      maxRedirects: 0,
      proxy: false,
      maxContentLength: MAX_RESPONSE_BYTES,
      maxBodyLength: MAX_RESPONSE_BYTES,
      responseType: "arraybuffer",
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
      httpAgent,
      httpsAgent,
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
  if (chain.some((e) => e instanceof BlockedAddressError || (e as { code?: string }).code === "EWABOT_BLOCKED_ADDRESS")) return "host_not_allowed";
  if (err instanceof AxiosError) {
    if (err.code === AxiosError.ERR_CANCELED || err.code === AxiosError.ECONNABORTED || err.code === AxiosError.ETIMEDOUT || err.code === "ETIMEDOUT") {
      return /maxContentLength/i.test(err.message) ? "invalid_response" : "timeout";
    }
    if (err.code === AxiosError.ERR_BAD_RESPONSE || /maxContentLength/i.test(err.message)) return "invalid_response";
  }
  if (chain.some((e) => (e as { name?: string }).name === "TimeoutError" || (e as { name?: string }).name === "AbortError")) return "timeout";
  return "network_error";
}
