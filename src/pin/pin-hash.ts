import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";

/**
 * PIN hashes: scrypt (N=2^14, r=8, p=1, 16-byte random salt, 32-byte key), stored as
 *   scrypt$<N>$<r>$<p>$<salt base64>$<key base64>
 * The parameters travel with the hash, so they can be raised later without invalidating stored PINs.
 * A 6-digit PIN has only 10^6 values: the hash slows an offline guesser, the attempt counter is the real defence.
 */
export const SCRYPT_PARAMS = { N: 2 ** 14, r: 8, p: 1, keyLen: 32, saltLen: 16 } as const;
const MAX_N = 2 ** 17;

function derive(pin: string, salt: Buffer, N: number, r: number, p: number, keyLen: number): Promise<Buffer> {
  const opts: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) => scryptCb(pin.normalize("NFKC"), salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPin(pin: string): Promise<string> {
  const { N, r, p, keyLen, saltLen } = SCRYPT_PARAMS;
  const salt = randomBytes(saltLen);
  const key = await derive(pin, salt, N, r, p, keyLen);
  return ["scrypt", N, r, p, salt.toString("base64"), key.toString("base64")].join("$");
}

interface Parsed {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parse(stored: string): Parsed | null {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return null;
  const [N, r, p] = parts.slice(1, 4).map((x) => Number(x)) as [number, number, number];
  if (![N, r, p].every(Number.isSafeInteger) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  const salt = Buffer.from(parts[4]!, "base64");
  const key = Buffer.from(parts[5]!, "base64");
  if (salt.length < 8 || key.length < 16 || key.length > 64) return null;
  return { N, r, p, salt, key };
}

/** A fixed dummy hash: work of the same size when there is no stored hash (no PIN, malformed row). */
const DUMMY: Parsed = { ...SCRYPT_PARAMS, salt: Buffer.alloc(SCRYPT_PARAMS.saltLen, 7), key: Buffer.alloc(SCRYPT_PARAMS.keyLen) };

/**
 * True when `pin` matches `stored`. Always derives exactly once (against a dummy when `stored` is null or
 * malformed) and compares in constant time, so the time taken says nothing of whether a PIN exists.
 */
export async function pinMatches(pin: string, stored: string | null): Promise<boolean> {
  const parsed = stored === null ? null : parse(stored);
  const target = parsed ?? DUMMY;
  const key = await derive(typeof pin === "string" ? pin : "", target.salt, target.N, target.r, target.p, target.key.length);
  const equal = timingSafeEqual(key, target.key);
  return parsed !== null && equal;
}
