import { createHmac } from "node:crypto";
import { safeEqual } from "../../shared/crypto";

/**
 * X-Twilio-Signature, as Twilio computes it for webhooks and status callbacks
 * (https://www.twilio.com/docs/usage/webhooks/webhooks-security; twilio/twilio-node src/webhooks/webhooks.ts):
 *
 *   1. start from the full URL Twilio called (scheme, host, path and query string);
 *   2. for a form-encoded POST, sort the parameters by name (plain code-unit order, case-sensitive) and append
 *      each name immediately followed by its value, no separators (a repeated name: its distinct values sorted,
 *      each appended as name+value);
 *   3. HMAC-SHA1 of that string (UTF-8) keyed with the account's auth token, base64-encoded.
 *
 * Twilio's own validator accepts the URL with or without the scheme's default port (":443"/":80"), "since
 * signature generation on the back end is inconsistent"; verify does the same. Comparison is constant-time.
 */
export type SignatureParams = Record<string, string | string[] | undefined> | URLSearchParams | ReadonlyArray<readonly [string, string]>;

function toEntries(params: SignatureParams): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (k: string, v: string) => {
    const list = out.get(k);
    if (list) list.push(v);
    else out.set(k, [v]);
  };
  if (params instanceof URLSearchParams) {
    for (const [k, v] of params) add(k, v);
  } else if (Array.isArray(params)) {
    for (const [k, v] of params as ReadonlyArray<readonly [string, string]>) add(k, v);
  } else {
    for (const [k, v] of Object.entries(params as Record<string, string | string[] | undefined>)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) add(k, String(item));
      else add(k, String(v));
    }
  }
  return out;
}

/** The string Twilio signs: URL + each parameter name and value, sorted by name. */
export function signaturePayload(url: string, params: SignatureParams = {}): string {
  const entries = toEntries(params);
  let data = url;
  for (const name of [...entries.keys()].sort()) {
    const values = [...new Set(entries.get(name))].sort();
    for (const v of values) data += name + v;
  }
  return data;
}

export function computeTwilioSignature(authToken: string, url: string, params: SignatureParams = {}): string {
  return createHmac("sha1", authToken).update(Buffer.from(signaturePayload(url, params), "utf8")).digest("base64");
}

/** The URL with the scheme's default port written out, and without any port given in it equal to the default. */
function urlVariants(url: string): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [url];
  }
  const variants = new Set<string>([url]);
  const defaultPort = u.protocol === "https:" ? "443" : u.protocol === "http:" ? "80" : "";
  // WHATWG URL drops a default port (":443" on https), so both spellings are rebuilt by hand; a non-default port
  // is part of the address and is never dropped
  if (!defaultPort || u.port !== "") return [...variants];
  const auth = `${u.username}${u.password ? `:${u.password}` : ""}${u.username || u.password ? "@" : ""}`;
  variants.add(`${u.protocol}//${auth}${u.host}${u.pathname}${u.search}${u.hash}`);
  variants.add(`${u.protocol}//${auth}${u.host}:${defaultPort}${u.pathname}${u.search}${u.hash}`);
  return [...variants];
}

/** True when `signature` (the X-Twilio-Signature header) matches the URL and parameters. Missing → false. */
export function verifyTwilioSignature(authToken: string, signature: string | string[] | undefined, url: string, params: SignatureParams = {}): boolean {
  const given = Array.isArray(signature) ? signature[0] : signature;
  if (!authToken || typeof given !== "string" || given === "") return false;
  let ok = false;
  for (const candidate of urlVariants(url)) {
    // no early exit: the same work whichever variant matches
    if (safeEqual(given, computeTwilioSignature(authToken, candidate, params))) ok = true;
  }
  return ok;
}
