import { randomBytes } from "node:crypto";
import { Keyring, randomIv, safeEqual } from "../src/shared/crypto";

describe("GCM nonces", () => {
  it("are 12 bytes, never repeat across pool refills, and are copies the caller may keep", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1_500; i++) {
      const iv = randomIv();
      expect(iv.length).toBe(12);
      seen.add(iv.toString("hex"));
    }
    expect(seen.size).toBe(1_500); // 1,500 nonces span four refills of the 341-nonce pool
    const a = randomIv();
    const copy = Buffer.from(a);
    for (let i = 0; i < 400; i++) randomIv(); // refills and hands out more
    expect(a.equals(copy)).toBe(true);
    // and every ciphertext carries its own
    const k = Keyring.fromBase64(randomBytes(32).toString("base64"));
    const ivs = new Set(Array.from({ length: 700 }, () => k.encrypt("job-data", "x").split(".")[2]));
    expect(ivs.size).toBe(700);
  });
});

describe("Keyring", () => {
  const keyring = new Keyring(randomBytes(32));

  it("round-trips and binds ciphertext to its purpose", () => {
    const token = keyring.encrypt("tenant-token", "EAAG-secret");
    expect(token).not.toContain("EAAG");
    expect(keyring.decryptString("tenant-token", token)).toBe("EAAG-secret");
    expect(() => keyring.decrypt("job-data", token)).toThrow();
  });

  it("rejects tampered ciphertext and another key's ciphertext", () => {
    const token = keyring.encrypt("job-data", "hello");
    const parts = token.split(".");
    parts[4] = Buffer.from("jello").toString("base64url");
    expect(() => keyring.decrypt("job-data", parts.join("."))).toThrow();
    const other = new Keyring(randomBytes(32));
    expect(() => other.decrypt("job-data", token)).toThrow(/another key/);
  });

  it("keys hashes per purpose", () => {
    expect(keyring.hmac("otp-hash", "a", "b")).not.toBe(keyring.hmac("contact-key", "a", "b"));
    expect(keyring.hmac("otp-hash", "a", "b")).not.toBe(keyring.hmac("otp-hash", "ab", ""));
  });

  it("compares in constant time and by value", () => {
    expect(safeEqual("abc", "abc")).toBe(true);
    expect(safeEqual("abc", "abd")).toBe(false);
    expect(safeEqual("abc", "abcd")).toBe(false);
  });
});
