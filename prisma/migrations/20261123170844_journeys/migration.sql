-- AlterTable
ALTER TABLE "contacts" ADD COLUMN     "reverify_required_at" TIMESTAMPTZ(3),
ADD COLUMN     "verified_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "logins" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "contact_id" UUID NOT NULL,
    "external_id" TEXT NOT NULL,
    "device" TEXT,
    "location" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMPTZ(3),
    "revoked_by" TEXT,

    CONSTRAINT "logins_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "pin_reset_tokens" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "contact_id" UUID NOT NULL,
    "token_hash" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "used_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pin_reset_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "logins_contact_id_revoked_at_idx" ON "logins"("contact_id", "revoked_at");

-- CreateIndex
CREATE UNIQUE INDEX "logins_tenant_id_external_id_key" ON "logins"("tenant_id", "external_id");

-- CreateIndex
CREATE UNIQUE INDEX "pin_reset_tokens_token_hash_key" ON "pin_reset_tokens"("token_hash");

-- CreateIndex
CREATE INDEX "pin_reset_tokens_contact_id_idx" ON "pin_reset_tokens"("contact_id");

