-- The two-step PIN protects the account (docs/journeys.md#pin):
-- a waiting-period reset counts from the request (not from when the PIN was set), and a right PIN cancels it;
ALTER TABLE "contact_pins" ADD COLUMN "reset_requested_at" TIMESTAMPTZ(3);
-- account-changing actions (number change, recovery email, sign-out of all sessions) ask for a recent PIN proof;
ALTER TABLE "contact_pins" ADD COLUMN "verified_at" TIMESTAMPTZ(3);
-- a code checked right for a purpose in pin.requireFor stays pending until the PIN is checked too.
ALTER TABLE "verifications" ADD COLUMN "code_verified_at" TIMESTAMPTZ(3);
