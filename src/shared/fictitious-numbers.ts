import { isValidPhoneNumber } from "libphonenumber-js/max";

/**
 * Numbers that can never reach a real person: the ranges numbering plans reserve for fiction (films, books,
 * documentation, tests). Only these may be a tenant's test numbers (otp.testNumbers, docs/verify-api.md), so a
 * test number can never be used to send codes to numbers someone pays for or earns from (SMS pumping, toll fraud).
 *
 * A number is fictitious when it is in one of the ranges below AND is a valid number for libphonenumber (an
 * invalid one could never get a code anyway: `POST /v1/verifications` refuses it). "Invalid for libphonenumber"
 * alone is NOT a fictitious range: metadata changes, and real numbers are sometimes reported invalid.
 */
export const FICTITIOUS_RANGES: ReadonlyArray<{ pattern: RegExp; describe: string }> = [
  // NANP (US, Canada, …): 555-0100 to 555-0199 in every area code are reserved for fictitious use
  { pattern: /^\+1[2-9]\d{2}55501\d{2}$/, describe: "+1 NPA 555-0100 to 555-0199 (NANP, any area code)" },
  // UK, Ofcom's numbers for TV and radio drama (geographic ones libphonenumber accepts)
  { pattern: /^\+442079460\d{3}$/, describe: "+44 20 7946 0000 to 0999 (London)" },
  { pattern: /^\+44(?:11[3-8]|121|131|141|151|161)4960\d{3}$/, describe: "+44 113/114/116/117/118/121/131/141/151/161 496 0000 to 0999" },
  { pattern: /^\+441914980\d{3}$/, describe: "+44 191 498 0000 to 0999 (Tyneside)" },
  { pattern: /^\+442896496\d{3}$/, describe: "+44 28 9649 6000 to 6999 (Northern Ireland)" },
  { pattern: /^\+442920180\d{3}$/, describe: "+44 29 2018 0000 to 0999 (Cardiff)" },
];

/** How many test numbers a tenant may have. */
export const MAX_TEST_NUMBERS = 20;

/** Whether an E.164 number is in a fictitious range (and a valid number). */
export function isFictitiousNumber(e164: string): boolean {
  if (!FICTITIOUS_RANGES.some((r) => r.pattern.test(e164))) return false;
  try {
    return isValidPhoneNumber(e164);
  } catch {
    return false;
  }
}
