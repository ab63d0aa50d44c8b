import ipaddr from "ipaddr.js";

/**
 * IP addresses, parsed once with ipaddr.js: the classification the outbound-request guard uses
 * (src/shared/safe-http.ts) and the canonical form per-IP limits are keyed on.
 *
 * One address has many spellings (`::ffff:203.0.113.7` and `203.0.113.7`, `2001:DB8::1` and `2001:db8:0:0::1`), and
 * one IPv6 customer usually holds a whole /64 (2^64 addresses). Limits keyed on the raw string would give each
 * spelling and each address of the /64 an allowance of its own; `ipLimitKey` maps them all to one key.
 */
type Parsed = ipaddr.IPv4 | ipaddr.IPv6;

/** The address without brackets or a zone id, parsed; null when it is not an IP address in a standard spelling. */
export function parseIp(raw: string): Parsed | null {
  if (typeof raw !== "string") return null;
  let s = raw.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (s.length === 0 || s.length > 64) return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) return ipaddr.IPv4.parse(s);
  if (s.includes(":") && ipaddr.IPv6.isValid(s)) return ipaddr.IPv6.parse(s);
  return null;
}

/** The IPv4 address carried by an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-translated (`::ffff:0:a.b.c.d`) IPv6 address. */
function embeddedIpv4(a: ipaddr.IPv6): ipaddr.IPv4 | null {
  const range = a.range();
  if (range !== "ipv4Mapped" && range !== "rfc6145") return null;
  const b = a.toByteArray();
  return new ipaddr.IPv4(b.slice(12, 16));
}

/**
 * The canonical spelling: IPv4 dotted decimal (IPv4-mapped and -translated IPv6 become their IPv4 address), IPv6
 * lower-case and compressed (RFC 5952). Null when `raw` is not an IP address.
 */
export function canonicalIp(raw: string): string | null {
  const a = parseIp(raw);
  if (!a) return null;
  if (a.kind() === "ipv6") {
    const v4 = embeddedIpv4(a as ipaddr.IPv6);
    if (v4) return v4.toString();
    return (a as ipaddr.IPv6).toRFC5952String();
  }
  return a.toString();
}

/**
 * The key a per-IP limit counts under: an IPv4 address as is; an IPv6 address by its /64 (`2001:db8:1:2::/64`),
 * since one subscriber is given a whole /64. Anything that is not an IP address shares the single key `invalid`
 * (so garbage never earns a fresh allowance).
 */
export function ipLimitKey(raw: string | null | undefined): string {
  const canonical = raw ? canonicalIp(raw) : null;
  if (!canonical) return "invalid";
  if (!canonical.includes(":")) return canonical;
  const b = ipaddr.IPv6.parse(canonical).toByteArray();
  const prefix = ipaddr.fromByteArray([...b.slice(0, 8), 0, 0, 0, 0, 0, 0, 0, 0]) as ipaddr.IPv6;
  return `${prefix.toRFC5952String()}/64`;
}

/**
 * True for addresses a tenant-controlled URL must never reach: anything but global unicast. Loopback, unspecified,
 * RFC 1918, link-local (cloud metadata 169.254.169.254), CGNAT, benchmarking, documentation, reserved, broadcast,
 * multicast, unique-local, site-local, discard, Teredo, NAT64 (64:ff9b::/96 and 64:ff9b:1::/48: they translate to
 * any IPv4 address, inside ones included) and the deprecated IPv4-compatible ::/96. IPv4 carried inside IPv6
 * (mapped `::ffff:a.b.c.d`, translated `::ffff:0:a.b.c.d`, 6to4 `2002:AABB:CCDD::`) is judged by that IPv4
 * address. Something that is not an address at all counts as non-public.
 */
export function isNonPublicAddress(address: string): boolean {
  const a = parseIp(address);
  if (!a) return true;
  if (a.kind() === "ipv4") return (a as ipaddr.IPv4).range() !== "unicast";
  const v6 = a as ipaddr.IPv6;
  const v4 = embeddedIpv4(v6);
  if (v4) return v4.range() !== "unicast";
  const b = v6.toByteArray();
  if (v6.range() === "6to4") return new ipaddr.IPv4(b.slice(2, 6)).range() !== "unicast";
  if (b.slice(0, 12).every((x) => x === 0)) return true; // ::, ::1 and IPv4-compatible ::a.b.c.d
  return v6.range() !== "unicast";
}

/** True for loopback addresses (127.0.0.0/8, ::1, and IPv4 loopback inside mapped/translated IPv6). */
export function isLoopbackAddress(address: string): boolean {
  const a = parseIp(address);
  if (!a) return false;
  if (a.kind() === "ipv4") return (a as ipaddr.IPv4).range() === "loopback";
  const v4 = embeddedIpv4(a as ipaddr.IPv6);
  return v4 ? v4.range() === "loopback" : (a as ipaddr.IPv6).range() === "loopback";
}
