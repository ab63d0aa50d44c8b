import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Keys derived from SECRETS_KEY, one per purpose (HKDF-SHA256), so a key leaked from one use says nothing of
 * another. Every ciphertext and every stored keyed hash carries the id of the key that made it, for rotation.
 *
 * Rotation (docs/security.md): SECRETS_KEY is the current key, used for everything new; SECRETS_KEY_PREVIOUS lists
 * old keys that stay readable (ciphertexts are decrypted with the key their id names; stored hashes are checked
 * against every key) until `npm run secrets:reencrypt` has moved what it can to the current key.
 */
export type KeyPurpose = "job-data" | "tenant-token" | "otp-code" | "otp-hash" | "contact-key" | "api-key" | "held-change";

/** The id of a master key: the first 8 hex digits of its SHA-256 (says nothing of the key). */
export function keyIdOf(master: Buffer): string {
  return createHash("sha256").update(master).digest("hex").slice(0, 8);
}

class KeySlot {
  readonly id: string;
  private readonly derived = new Map<KeyPurpose, Buffer>();
  constructor(private readonly master: Buffer) {
    if (master.length !== 32) throw new Error("SECRETS_KEY must be 32 bytes");
    this.id = keyIdOf(master);
  }
  key(purpose: KeyPurpose): Buffer {
    let k = this.derived.get(purpose);
    if (!k) {
      k = Buffer.from(hkdfSync("sha256", this.master, Buffer.alloc(0), `wabot:${purpose}`, 32));
      this.derived.set(purpose, k);
    }
    return k;
  }
  hmac(purpose: KeyPurpose, parts: readonly string[]): string {
    const h = createHmac("sha256", this.key(purpose));
    for (const p of parts) h.update(p).update("\u0000");
    return h.digest("hex");
  }
}

/** A stored keyed hash: `h1.<keyId>.<hex HMAC-SHA256>` (rows written before key ids: the bare hex). */
const TAGGED_HASH = /^h1\.([0-9a-f]{8})\.([0-9a-f]{64})$/;
const ZERO_HASH = "0".repeat(64);

export interface HashCheck {
  ok: boolean;
  /** the key that matched (null: none, or a legacy untagged hash matched no key) */
  keyId: string | null;
  /** true when it matched and is already stored in the current key's tagged form (nothing to upgrade) */
  current: boolean;
}

export class Keyring {
  /** the current key's id: every new ciphertext and hash is made with it */
  readonly keyId: string;
  private readonly slots: KeySlot[];
  private readonly byId = new Map<string, KeySlot>();

  constructor(master: Buffer, previous: readonly Buffer[] = []) {
    this.slots = [new KeySlot(master), ...previous.map((p) => new KeySlot(p))];
    this.keyId = this.slots[0]!.id;
    for (const s of this.slots) if (!this.byId.has(s.id)) this.byId.set(s.id, s);
    // the same key twice (current also listed as previous) is one key
    this.slots = [...this.byId.values()];
  }

  /** `previous`: SECRETS_KEY_PREVIOUS, comma-separated base64 keys (or a list). */
  static fromBase64(secretsKey: string, previous: string | readonly string[] = []): Keyring {
    const list = typeof previous === "string" ? previous.split(",") : previous;
    return new Keyring(
      Buffer.from(secretsKey, "base64"),
      list.map((k) => k.trim()).filter(Boolean).map((k) => Buffer.from(k, "base64")),
    );
  }

  /** Every key id this keyring can read, the current one first. */
  get keyIds(): string[] {
    return this.slots.map((s) => s.id);
  }

  /** The ids of the previous keys (readable, never used for new data). */
  get previousKeyIds(): string[] {
    return this.keyIds.slice(1);
  }

  /** The current key for a purpose (HKDF of SECRETS_KEY). */
  key(purpose: KeyPurpose): Buffer {
    return this.slots[0]!.key(purpose);
  }

  /** AES-256-GCM; output `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts), always with the current key. */
  encrypt(purpose: KeyPurpose, plaintext: string | Buffer): string {
    const iv = randomIv();
    const cipher = createCipheriv("aes-256-gcm", this.key(purpose), iv);
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return ["v1", this.keyId, iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), ct.toString("base64url")].join(".");
  }

  /** Decrypts with the key the ciphertext names: the current one or one of SECRETS_KEY_PREVIOUS. */
  decrypt(purpose: KeyPurpose, token: string): Buffer {
    const parts = token.split(".");
    if (parts.length !== 5 || parts[0] !== "v1") throw new Error("malformed ciphertext");
    const [, kid, iv, tag, ct] = parts as [string, string, string, string, string];
    const slot = this.byId.get(kid);
    if (!slot) throw new Error(`ciphertext made with another key (${kid}): add that key to SECRETS_KEY_PREVIOUS`);
    const decipher = createDecipheriv("aes-256-gcm", slot.key(purpose), Buffer.from(iv, "base64url"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]);
  }

  decryptString(purpose: KeyPurpose, token: string): string {
    return this.decrypt(purpose, token).toString("utf8");
  }

  /** The key id a ciphertext or a tagged hash names (null for anything else, e.g. a legacy bare hash). */
  static keyIdIn(value: string): string | null {
    const c = /^v1\.([0-9a-f]{8})\./.exec(value);
    if (c) return c[1]!;
    return TAGGED_HASH.exec(value)?.[1] ?? null;
  }

  /** True when a ciphertext or tagged hash was made with the current key. */
  isCurrent(value: string): boolean {
    return Keyring.keyIdIn(value) === this.keyId;
  }

  /**
   * Keyed hash (HMAC-SHA256, hex) with the current key, untagged: for derived values that are never stored for
   * long (Redis mailbox names, a flow's in-session digest). Stored hashes use keyedHash.
   */
  hmac(purpose: KeyPurpose, ...parts: string[]): string {
    return this.slots[0]!.hmac(purpose, parts);
  }

  /** A keyed hash to store: `h1.<keyId>.<hex>` with the current key. Check it with verifyHash. */
  keyedHash(purpose: KeyPurpose, ...parts: string[]): string {
    return `h1.${this.keyId}.${this.slots[0]!.hmac(purpose, parts)}`;
  }

  /**
   * Every stored form `parts` may have: tagged with each key (current first), then the legacy untagged hex of
   * each key. For lookups by hash (`WHERE hash IN (…)`): one HMAC per key.
   */
  hashCandidates(purpose: KeyPurpose, ...parts: string[]): string[] {
    const hexes = this.slots.map((s) => [s.id, s.hmac(purpose, parts)] as const);
    return [...hexes.map(([id, h]) => `h1.${id}.${h}`), ...hexes.map(([, h]) => h)];
  }

  /**
   * Checks `parts` against a stored keyed hash (tagged, or legacy bare hex). Always the same work whatever
   * `stored` is (null, malformed, another key's, right or wrong): one HMAC per key in the keyring and one
   * constant-time comparison per key. So a lookup that found nothing costs what one that found a row costs.
   */
  verifyHash(purpose: KeyPurpose, stored: string | null | undefined, ...parts: string[]): HashCheck {
    const tagged = stored ? TAGGED_HASH.exec(stored) : null;
    const legacy = !tagged && stored && /^[0-9a-f]{64}$/.test(stored) ? stored : null;
    const target = Buffer.from(tagged ? tagged[2]! : (legacy ?? ZERO_HASH), "hex");
    let match: string | null = null;
    for (const s of this.slots) {
      const equal = timingSafeEqual(Buffer.from(s.hmac(purpose, parts), "hex"), target);
      if (equal && (legacy !== null || (tagged !== null && tagged[1] === s.id)) && match === null) match = s.id;
    }
    return { ok: match !== null, keyId: match, current: match !== null && tagged !== null && match === this.keyId };
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

/**
 * A fresh random 96-bit GCM nonce, cut from a pool the CSPRNG refills 4 KiB at a time: one getrandom call per
 * 341 nonces instead of one each (that call was 5% of the webhook path's CPU in the ingest profile; see
 * docs/benchmarks.md). Every nonce is still independent CSPRNG output, used once: a pooled byte is never handed out
 * twice, because the pool is replaced, not reused, when it runs out.
 */
const IV_BYTES = 12;
const IV_POOL_BYTES = IV_BYTES * 341;
let ivPool = Buffer.alloc(0);
let ivOffset = 0;
export function randomIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivOffset = 0;
  }
  const iv = Buffer.from(ivPool.subarray(ivOffset, ivOffset + IV_BYTES)); // a copy: the pool is never exposed
  ivOffset += IV_BYTES;
  return iv;
}
