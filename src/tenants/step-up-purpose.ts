/**
 * The verification purpose of an admin step-up code's carrier (src/tenants/step-up.ts). The ':' keeps it out of the
 * Verify API's purpose pattern and the chat; the OTP engine's lookups, events and the console use this to leave
 * such rows alone. A module of its own (no imports) so the OTP code can ask without depending on the step-up service.
 */
export const STEP_UP_PURPOSE_PREFIX = "step_up:";
export const isStepUpPurpose = (purpose: string | null | undefined): boolean => !!purpose?.startsWith(STEP_UP_PURPOSE_PREFIX);

/** The Prisma `where` fragment that leaves step-up carriers out of a verification lookup or list. */
export const NOT_STEP_UP = { NOT: { purpose: { startsWith: STEP_UP_PURPOSE_PREFIX } } } as const;
