import type { VerificationRow } from "./verification.service";

/** The verification object of the Verify API (docs/verify-api.md). Never the code, nor its hash. */
export function presentVerification(v: VerificationRow, extra: { valid?: boolean; pinAttemptsRemaining?: number; pinLocked?: boolean } = {}) {
  return {
    id: v.id,
    to: v.to,
    channel: v.channel,
    purpose: v.purpose,
    status: v.status,
    ...(extra.valid === undefined ? {} : { valid: extra.valid }),
    // the code was right and the contact's PIN is still to be given (POST /v1/verifications/check {"id", "pin"})
    ...(v.status === "pending" && v.codeVerifiedAt ? { pinRequired: true } : {}),
    ...(extra.pinAttemptsRemaining === undefined ? {} : { pinAttemptsRemaining: extra.pinAttemptsRemaining }),
    ...(extra.pinLocked ? { pinLocked: true } : {}),
    expiresAt: v.expiresAt.toISOString(),
    attempts: v.attempts,
    maxAttempts: v.maxAttempts,
    attemptsRemaining: Math.max(0, v.maxAttempts - v.attempts),
    sendCount: v.sendCount,
    resendAvailableAt: v.status === "pending" && v.nextSendAt ? v.nextSendAt.toISOString() : null,
    locale: v.locale,
    sendCodeAttempts: v.deliveries.map((d) => ({
      channel: d.channel,
      provider: d.provider,
      status: d.status,
      ...(d.errorCode ? { errorCode: d.errorCode } : {}),
      ...(d.reason ? { reason: d.reason } : {}),
      at: d.createdAt.toISOString(),
      updatedAt: d.updatedAt.toISOString(),
    })),
    createdAt: v.createdAt.toISOString(),
    updatedAt: v.updatedAt.toISOString(),
    endedAt: v.endedAt?.toISOString() ?? null,
  };
}
