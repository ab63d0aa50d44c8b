import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import http from "node:http";
import https from "node:https";
import { isIP, type Socket } from "node:net";
import { isLoopbackAddress, isNonPublicAddress } from "./ip";

/**
 * Requests to URLs a tenant controls (flow `http` steps, event callbacks): the one rule for both.
 *
 * - `https` only, to public addresses only. An IP literal is judged as written (after the URL parser's
 *   normalisation: `127.1`, `2130706433`, `0x7f000001` all become `127.0.0.1`); a name is judged on every address
 *   DNS gives for it, inside the agent's `lookup`, so the socket connects to an address that was checked (no DNS
 *   rebinding window between a check and the connect).
 * - Development mode only (`NODE_ENV=development`, the demo): plain `http` to `127.0.0.1`, `localhost` or `[::1]`,
 *   and a name must resolve to loopback only. Outside development mode no loopback address is reachable at all.
 * - No credentials in the URL; the fragment is dropped. Callers also set `maxRedirects: 0` and `proxy: false`
 *   (`safeRequestOptions`), so neither a redirect nor a proxy from the environment can take the request elsewhere.
 */
export const MAX_TARGET_URL_LENGTH = 2048;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1"]);

export interface SafeHttpOptions {
  /** development mode: plain http to the loopback names is allowed */
  dev: boolean;
}

export type TargetUrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

/** The host without brackets or a trailing dot, lower-case. */
export function normaliseHost(h: string): string {
  let s = h.trim().toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (s.endsWith(".")) s = s.slice(0, -1);
  return s;
}

/** The static half of the rule (what can be judged without DNS). `what` names the URL in the reasons. */
export function checkTargetUrl(raw: string, opts: SafeHttpOptions, what = "the URL"): TargetUrlCheck {
  if (typeof raw !== "string" || raw.length === 0) return { ok: false, reason: `${what} is required` };
  if (raw.length > MAX_TARGET_URL_LENGTH) return { ok: false, reason: `${what} is longer than ${MAX_TARGET_URL_LENGTH} characters` };
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { ok: false, reason: `${what} is not a valid URL` };
  }
  if (u.username || u.password) return { ok: false, reason: `${what} must not contain credentials` };
  const host = normaliseHost(u.hostname);
  if (!host) return { ok: false, reason: `${what} has no host` };
  if (u.protocol === "http:") {
    if (!opts.dev) return { ok: false, reason: `${what} must use https` };
    if (!LOOPBACK_HOSTS.has(host)) return { ok: false, reason: `${what} must use https (in development, http is allowed only for 127.0.0.1, localhost and [::1])` };
  } else if (u.protocol !== "https:") {
    return { ok: false, reason: `${what} must use https` };
  } else if (isIP(host) && isNonPublicAddress(host)) {
    return { ok: false, reason: `${what} points to a non-public address` };
  } else if (host === "localhost" || host.endsWith(".localhost")) {
    return { ok: false, reason: `${what} points to a non-public address` };
  }
  u.hash = "";
  return { ok: true, url: u };
}

/** A connection refused because the address is not allowed (never shown to tenants as such). */
export class BlockedAddressError extends Error {
  override readonly name = "BlockedAddressError";
  readonly code = "EWABOT_BLOCKED_ADDRESS";
}

/** True when `err` (or one of its causes) is a BlockedAddressError. */
export function isBlockedAddressError(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; e && i < 5; i++, e = (e as { cause?: unknown }).cause) {
    if (e instanceof BlockedAddressError || (e as { code?: string }).code === "EWABOT_BLOCKED_ADDRESS") return true;
  }
  return false;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup that fails unless every address of the name passes `accept`. */
function guardedLookup(accept: (address: string) => boolean) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const list = addresses as LookupAddress[];
      if (list.length === 0 || !list.every((a) => accept(a.address))) return callback(new BlockedAddressError(`${hostname} resolves to an address that is not allowed`), "", 0);
      if (options.all) return callback(null, list);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/**
 * An agent whose every connection is judged twice: the name's addresses in `lookup` (before connecting), and the
 * socket's peer address when the TCP connection is up (an IP literal never goes through `lookup`). A refused peer
 * is dropped before a byte is written (TLS has not even started).
 */
function guarded<A extends http.Agent>(agent: A, accept: (address: string) => boolean): A {
  const lookup = guardedLookup(accept);
  const create = (agent as unknown as { createConnection: (o: Record<string, unknown>, cb?: (err: Error | null, s?: Socket) => void) => Socket | undefined }).createConnection.bind(agent);
  (agent as unknown as { createConnection: unknown }).createConnection = (options: Record<string, unknown>, cb?: (err: Error | null, s?: Socket) => void) => {
    const socket = create({ ...options, lookup }, cb);
    socket?.once("connect", () => {
      const peer = socket.remoteAddress ?? "";
      if (!accept(peer)) socket.destroy(new BlockedAddressError("the peer address is not allowed"));
    });
    return socket;
  };
  return agent;
}

/** https: public addresses only, in any mode. */
const httpsAgent = guarded(new https.Agent({ keepAlive: false }), (a) => !isNonPublicAddress(a));
/** http in development (loopback names only): the name must resolve to loopback, and the peer be loopback. */
const devHttpAgent = guarded(new http.Agent({ keepAlive: false }), isLoopbackAddress);
/** http outside development: nothing is reachable (checkTargetUrl refuses such URLs first; this is the backstop). */
const closedHttpAgent = guarded(new http.Agent({ keepAlive: false }), () => false);

/** The axios options every tenant-URL request uses: the guarded agents, no redirects, no proxy from the environment. */
export function safeRequestOptions(opts: SafeHttpOptions): { httpAgent: http.Agent; httpsAgent: https.Agent; maxRedirects: 0; proxy: false } {
  return { httpAgent: opts.dev ? devHttpAgent : closedHttpAgent, httpsAgent, maxRedirects: 0, proxy: false };
}
