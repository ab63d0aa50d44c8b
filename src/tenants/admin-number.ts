import { z } from "zod";
import { normalizeNumber } from "../otp/phone";

/** number types that can receive a WhatsApp code (every US/CA number is FIXED_LINE_OR_MOBILE) */
const MOBILE_TYPES = new Set(["MOBILE", "FIXED_LINE_OR_MOBILE"]);

/**
 * The admin number receives the step-up codes over WhatsApp (src/tenants/step-up.ts): a real mobile number
 * (libphonenumber-js, as for every code: src/otp/phone.ts), given in E.164 and stored as it normalises. A landline,
 * a premium-rate or an invalid number is refused when it is set, not discovered when the first code cannot go out.
 */
export const adminNumberSchema = z
  .string()
  .trim()
  .regex(/^\+[1-9]\d{6,14}$/, "an E.164 number, e.g. +447911123456")
  .transform((v, ctx) => {
    try {
      const n = normalizeNumber(v);
      if (n.type && MOBILE_TYPES.has(n.type)) return n.e164;
      ctx.addIssue({ code: "custom", message: "a mobile number that can receive WhatsApp codes (this one is not a mobile number)" });
    } catch {
      ctx.addIssue({ code: "custom", message: "a valid phone number in E.164 form, e.g. +447911123456" });
    }
    return z.NEVER;
  });
