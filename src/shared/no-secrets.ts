/**
 * The guard that keeps codes and secrets out of data that leaves the secret-handling code: event payloads sent to
 * businesses (src/events) and audit rows (src/audit). It looks at key names at any depth, never at values, and
 * throws `SecretInDataError` naming the path (never the value): passing a code there is a bug, not an outcome.
 *
 * A key is refused when, split into words (camelCase, snake_case, kebab-case), it contains
 * - `otp`, `pin`, `secret`, `password` or `passcode` (`otp`, `otpCode`, `pinHash`, `secretEnc`, `client_secret`), or
 * - `code`, unless the word before it makes it another kind of code (`errorCode`, `countryCode`, `languageCode`,
 *   `statusCode`, …) or the word after it is `length`/`digits` (`codeLength`); so `code`, `codeEnc`, `codeHash`,
 *   `verificationCode` are refused.
 * Audit rows also refuse `token` words (`accessToken`, `token`). Words like `pinned` or `spinner` are not `pin`.
 */
export class SecretInDataError extends Error {
  override readonly name = "SecretInDataError";
  constructor(readonly path: string) {
    super(`refused: data must not carry a code or secret (key "${path}")`);
  }
}

export interface NoSecretsOptions {
  /** extra words refused anywhere in a key (lower case), e.g. ["token"] */
  words?: readonly string[];
  /** where the data is going, for the error message */
  what?: string;
}

const ALWAYS = new Set(["otp", "otps", "totp", "hotp", "pin", "pins", "secret", "secrets", "password", "passwords", "passwd", "passcode", "passcodes"]);
const CODE_WORDS = new Set(["code", "codes"]);
/** `<word> code` that is not a verification code */
const OTHER_CODES = new Set([
  "error", "reason", "status", "country", "language", "lang", "locale", "currency", "postal", "zip", "area", "region", "dial",
  "calling", "http", "response", "result", "exit", "provider", "meta", "sub", "iso", "bar", "qr", "zone", "source", "product",
]);
const CODE_ALLOWED_AFTER = new Set(["length", "digits"]);
/** words run together without separators (`otpcode`, `clientsecret`) */
const RUN_TOGETHER = /^(otp|secret|passcode|password)|(otp|secret|passcode|password|pincode|verificationcode|onetimecode|otpcode)$/;
const MAX_DEPTH = 32;

export function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

export function isSecretKey(key: string, extraWords: readonly string[] = []): boolean {
  const words = keyWords(key);
  return words.some((w, i) => {
    if (ALWAYS.has(w) || RUN_TOGETHER.test(w) || extraWords.some((x) => w === x || w.endsWith(x))) return true;
    if (!CODE_WORDS.has(w)) return false;
    const before = words[i - 1];
    const after = words[i + 1];
    return !((before !== undefined && OTHER_CODES.has(before)) || (after !== undefined && CODE_ALLOWED_AFTER.has(after)));
  });
}

/** Throws SecretInDataError if any key at any depth looks like it holds a code or secret. */
export function assertNoSecrets(value: unknown, opts: NoSecretsOptions = {}): void {
  const seen = new WeakSet<object>();
  const words = opts.words ?? [];
  const walk = (v: unknown, path: string, depth: number): void => {
    if (v === null || typeof v !== "object") return;
    if (depth > MAX_DEPTH) throw new SecretInDataError(`${path} (nested deeper than ${MAX_DEPTH})`);
    if (seen.has(v)) return;
    seen.add(v);
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, `${path}[${i}]`, depth + 1));
      return;
    }
    if (v instanceof Date) return;
    for (const [key, child] of Object.entries(v as Record<string, unknown>)) {
      const childPath = path ? `${path}.${key}` : key;
      if (isSecretKey(key, words)) {
        const err = new SecretInDataError(childPath);
        if (opts.what) err.message = `${opts.what}: ${err.message}`;
        throw err;
      }
      walk(child, childPath, depth + 1);
    }
  };
  walk(value, "", 0);
}
