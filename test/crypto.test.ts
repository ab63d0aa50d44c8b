import { randomBytes } from "node:crypto";
import { Keyring, safeEqual } from "../src/shared/crypto";

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
