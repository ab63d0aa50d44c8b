import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Keys derived from SECRETS_KEY, one per purpose (HKDF-SHA256), so a key leaked from one use says nothing of
 * another. Every ciphertext carries the id of the key that made it, for rotation.
 */
export type KeyPurpose = "job-data" | "tenant-token" | "otp-code" | "otp-hash" | "contact-key" | "api-key";

export class Keyring {
  readonly keyId: string;
  private readonly keys = new Map<KeyPurpose, Buffer>();

  constructor(private readonly master: Buffer) {
    if (master.length !== 32) throw new Error("SECRETS_KEY must be 32 bytes");
    this.keyId = createHash("sha256").update(master).digest("hex").slice(0, 8);
  }

  static fromBase64(secretsKey: string): Keyring {
    return new Keyring(Buffer.from(secretsKey, "base64"));
  }

  key(purpose: KeyPurpose): Buffer {
    let k = this.keys.get(purpose);
    if (!k) {
      k = Buffer.from(hkdfSync("sha256", this.master, Buffer.alloc(0), `wabot:${purpose}`, 32));
      this.keys.set(purpose, k);
    }
    return k;
  }

  /** AES-256-GCM; output `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts). */
  encrypt(purpose: KeyPurpose, plaintext: string | Buffer): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key(purpose), iv);
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return ["v1", this.keyId, iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), ct.toString("base64url")].join(".");
  }

  decrypt(purpose: KeyPurpose, token: string): Buffer {
    const parts = token.split(".");
    if (parts.length !== 5 || parts[0] !== "v1") throw new Error("malformed ciphertext");
    const [, kid, iv, tag, ct] = parts as [string, string, string, string, string];
    if (kid !== this.keyId) throw new Error(`ciphertext made with another key (${kid})`);
    const decipher = createDecipheriv("aes-256-gcm", this.key(purpose), Buffer.from(iv, "base64url"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]);
  }

  decryptString(purpose: KeyPurpose, token: string): string {
    return this.decrypt(purpose, token).toString("utf8");
  }

  /** Keyed hash (HMAC-SHA256, hex) for lookups and comparisons that must not reveal the input. */
  hmac(purpose: KeyPurpose, ...parts: string[]): string {
    const h = createHmac("sha256", this.key(purpose));
    for (const p of parts) h.update(p).update("\u0000");
    return h.digest("hex");
  }
}

/** Constant-time comparison of two strings of any length (length differences leak nothing but the length check). */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const ab = typeof a === "string" ? Buffer.from(a) : a;
  const bb = typeof b === "string" ? Buffer.from(b) : b;
  if (ab.length !== bb.length) {
    timingSafeEqual(ab, ab); // same work either way
    return false;
  }
  return timingSafeEqual(ab, bb);
}

export function sha256Hex(input: string | Buffer): string {
  return createHash("sha256").update(input).digest("hex");
}
