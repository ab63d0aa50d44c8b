import { parsePhoneNumberWithError, type NumberType } from "libphonenumber-js/max";
import type { TenantSettings } from "../tenants/settings";
import { OtpError } from "./errors";

export interface CheckedNumber {
  e164: string;
  country: string | undefined;
  type: NumberType | undefined;
  /** the number without its last four digits: the key of the SMS-pumping (prefix) limit */
  prefix: string;
}

/** Normalises any reasonable spelling of an international number ("+44 7700 900123") to E.164; throws invalid_phone_number. */
export function normalizeNumber(input: string): CheckedNumber {
  const raw = input.trim();
  if (!raw.startsWith("+") || raw.length > 40) throw new OtpError("invalid_phone_number");
  let parsed;
  try {
    parsed = parsePhoneNumberWithError(raw);
  } catch {
    throw new OtpError("invalid_phone_number");
  }
  if (!parsed.isValid()) throw new OtpError("invalid_phone_number");
  const e164 = parsed.number;
  return { e164, country: parsed.country, type: parsed.getType(), prefix: e164.slice(0, -4) };
}

/** Applies the tenant's country and number-type policy (test numbers are exempt). */
export function checkNumberPolicy(n: CheckedNumber, policy: TenantSettings["phonePolicy"]): void {
  const country = n.country;
  if (policy.allowedCountries && (!country || !policy.allowedCountries.includes(country))) throw new OtpError("country_not_allowed");
  if (country && policy.deniedCountries.includes(country)) throw new OtpError("country_not_allowed");
  if (n.type && (policy.deniedTypes as string[]).includes(n.type)) throw new OtpError("unsupported_number_type");
}
