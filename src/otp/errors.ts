/**
 * The Verify API's error catalogue: each expected failure once, with its HTTP status and a message for a person.
 * Services return or throw these; the HTTP layer maps them in one place (src/http/errors.ts).
 */
export const OTP_ERRORS = {
  invalid_phone_number: { status: 400, message: "The number is not a valid phone number in E.164 form (+ and country code)" },
  country_not_allowed: { status: 400, message: "Codes cannot be sent to numbers of this country" },
  unsupported_number_type: { status: 400, message: "Codes cannot be sent to this kind of number (premium rate, toll-free, VoIP, …)" },
  channel_unavailable: { status: 400, message: "This channel is not configured for this business" },
  number_blocked: { status: 403, message: "New codes to this number are blocked for a while: the customer reported a code they did not request" },
  verification_not_found: { status: 404, message: "No pending verification matches: it was never created, or it has already ended" },
  verification_not_pending: { status: 409, message: "The verification has already ended; it cannot be canceled" },
  pin_not_expected: { status: 409, message: "This verification is not waiting for a PIN: check the code first" },
  rate_limited: { status: 429, message: "Too many requests: try again later" },
  resend_cooldown: { status: 429, message: "A code was sent moments ago: wait before asking for another" },
  send_limit_reached: { status: 429, message: "Too many codes were sent to this number: wait before asking for another" },
  daily_limit_reached: { status: 429, message: "This business's codes for today (UTC) are used up: new codes are accepted again after midnight UTC" },
} as const;

export type OtpErrorCode = keyof typeof OTP_ERRORS;

export class OtpError extends Error {
  readonly status: number;
  constructor(
    readonly code: OtpErrorCode,
    readonly retryAfterSeconds?: number,
    message?: string,
  ) {
    super(message ?? OTP_ERRORS[code].message);
    this.status = OTP_ERRORS[code].status;
  }
}
