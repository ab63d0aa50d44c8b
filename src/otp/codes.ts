import { randomInt } from "node:crypto";
import { safeEqual, type Keyring } from "../shared/crypto";

/** Uniform random digits from the CSPRNG: randomInt rejects out-of-range draws, so there is no modulo bias. */
export function generateCode(length: number): string {
  if (!Number.isInteger(length) || length < 6 || length > 10) throw new Error("code length must be 6-10");
  return randomInt(0, 10 ** length).toString().padStart(length, "0");
}

/** HMAC of the code bound to the verification id: a stolen row says nothing without SECRETS_KEY. */
export function hashCode(keyring: Keyring, verificationId: string, code: string): string {
  return keyring.hmac("otp-hash", verificationId, code);
}

export function codeMatches(keyring: Keyring, verificationId: string, guess: string, storedHash: string): boolean {
  return safeEqual(hashCode(keyring, verificationId, guess), storedHash);
}

/** What a person may type for a code: digits, possibly spaced or dashed ("123 456", "123-456"). */
export function extractCode(text: string, length: { min: number; max: number } = { min: 6, max: 10 }): string | null {
  const compact = text.trim().replace(/[\s-]/g, "");
  return new RegExp(`^\\d{${length.min},${length.max}}$`).test(compact) ? compact : null;
}
