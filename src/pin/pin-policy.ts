/**
 * Which 6-digit PINs are refused as too easy to guess. A PIN is refused when it is
 * - not exactly 6 ASCII digits;
 * - one digit six times (000000, 777777);
 * - an ascending or descending run, wrapping round 9→0 (123456, 654321, 012345, 789012);
 * - a short pattern repeated (121212, 123123);
 * - 6 consecutive digits of the contact's own number (its last six, or any other run of six);
 * - one of the commonest PINs of published PIN-frequency studies (112233, 159753, 147258, …).
 * The reason is a short English sentence meant for the flow's `weakText` fallback; it never repeats the PIN.
 */
export const PIN_LENGTH = 6;

/** Commonest 6-digit PINs not already caught by the rules above (keypad shapes, pairs, palindromes, dates-like). */
export const COMMON_PINS: ReadonlySet<string> = new Set([
  "112233", "113355", "111222", "222333", "111000", "000111", "001122", "110011", "112211", "123321", "321123",
  "456654", "654456", "789987", "159753", "951357", "357159", "753951", "147258", "258369", "369258", "147369",
  "741852", "852963", "963852", "258456", "159357", "357951", "147852", "123654", "456123", "123789", "789123",
  "789456", "456789", "102030", "010203", "100200", "121314", "123465", "124578", "135790", "246810", "135246",
  "142536", "520520", "520131", "131420", "007007", "123000", "000123", "100000", "200000", "999000", "696969",
  "101010", "131313", "123412", "112358", "314159", "271828", "102938", "098765", "199999", "000007",
]);

export type WeakContext = { phoneE164?: string | null };

export function weakPinReason(pin: string, ctx: WeakContext = {}): string | null {
  if (typeof pin !== "string" || !/^[0-9]{6}$/.test(pin)) return `The PIN must be exactly ${PIN_LENGTH} digits.`;
  const d = [...pin].map(Number);
  if (d.every((x) => x === d[0])) return "The PIN must not be one digit repeated.";
  const steps = d.slice(1).map((x, i) => (x - d[i]! + 10) % 10);
  if (steps.every((s) => s === 1) || steps.every((s) => s === 9)) return "The PIN must not be a run of consecutive digits.";
  for (const period of [2, 3]) {
    if ([...pin].every((c, i) => c === pin[i % period])) return "The PIN must not be a short pattern repeated.";
  }
  const phoneDigits = (ctx.phoneE164 ?? "").replace(/\D/g, "");
  if (phoneDigits.length >= PIN_LENGTH && phoneDigits.includes(pin)) return "The PIN must not be part of your phone number.";
  if (COMMON_PINS.has(pin)) return "This PIN is too common: choose a less predictable one.";
  return null;
}
