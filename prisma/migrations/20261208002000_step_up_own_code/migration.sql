-- Step-up codes get their own code path (src/tenants/step-up.ts): the keyed hash of the code and the wrong attempts
-- live on the held change, and tenant OTP settings (test numbers, attempts, limits) no longer apply to them.
ALTER TABLE "held_changes" ADD COLUMN "code_hash" TEXT;
ALTER TABLE "held_changes" ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0;

-- Held changes still pending were coded by the ordinary verification path (which honoured test numbers and the
-- maxAttempts setting of the tenant): they are refused, and the verifications of their codes end.
UPDATE "held_changes" SET "status" = 'expired', "resolved_at" = now() WHERE "status" = 'pending';
UPDATE "verifications" SET "status" = 'canceled', "ended_at" = now(), "code_enc" = NULL, "updated_at" = now()
 WHERE "status" = 'pending' AND starts_with("purpose", 'step_up:');
