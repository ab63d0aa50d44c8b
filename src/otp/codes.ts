import { randomInt } from "node:crypto";
import type { Keyring } from "../shared/crypto";

/** Uniform random digits from the CSPRNG: randomInt rejects out-of-range draws, so there is no modulo bias. */
export function generateCode(length: number): string {
  if (!Number.isInteger(length) || length < 6 || length > 10) throw new Error("code length must be 6-10");
  return randomInt(0, 10 ** length).toString().padStart(length, "0");
}

/**
 * HMAC of the code bound to the verification id, tagged with the key id (`h1.<keyId>.<hex>`): a stolen row says
 * nothing without SECRETS_KEY.
 */
export function hashCode(keyring: Keyring, verificationId: string, code: string): string {
  return keyring.keyedHash("otp-hash", verificationId, code);
}

/** The id and hash compared when no verification was found: the check does the same hashing either way. */
export const NO_VERIFICATION = { id: "00000000-0000-0000-0000-000000000000", codeHash: null } as const;

/**
 * True when `guess` is the code of `storedHash` (made with the current key or one of SECRETS_KEY_PREVIOUS). The
 * same work whatever `storedHash` is, including null (no verification found): one HMAC per key.
 */
export function codeMatches(keyring: Keyring, verificationId: string, guess: string, storedHash: string | null): boolean {
  return keyring.verifyHash("otp-hash", storedHash, verificationId, guess).ok;
}

/** What a person may type for a code: digits, possibly spaced or dashed ("123 456", "123-456"). */
export function extractCode(text: string, length: { min: number; max: number } = { min: 6, max: 10 }): string | null {
  const compact = text.trim().replace(/[\s-]/g, "");
  return new RegExp(`^\\d{${length.min},${length.max}}$`).test(compact) ? compact : null;
}

/**
 * What looks like a code anywhere in a text: 4 or more digits of any script (ASCII, Arabic-Indic, Devanagari…), the
 * gaps between them at most a few spaces, dashes, dots, commas, slashes or underscores ("123456", "123 456",
 * "1-2-3-4-5-6", "my code is ١٢٣٤٥٦"). Wider than extractCode on purpose: it decides what is stored, not what is checked.
 */
const CODE_LIKE = /\p{Nd}(?:[\s\p{Pd}.,/_·]{0,3}\p{Nd}){3,}/gu;

/** What a code-like run is stored as. */
export const REDACTED_CODE = "[code]";

/** The text with every code-like run replaced by REDACTED_CODE (the same text when it holds none). */
export function redactCodes(text: string): string {
  return text.replace(CODE_LIKE, REDACTED_CODE);
}
