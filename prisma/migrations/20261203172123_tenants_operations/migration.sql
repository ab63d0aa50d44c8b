-- AlterTable
ALTER TABLE "tenants" ADD COLUMN     "admin_number" TEXT,
ADD COLUMN     "app_secret_enc" TEXT,
ADD COLUMN     "messaging_limit_checked_at" TIMESTAMPTZ(3),
ADD COLUMN     "messaging_limit_tier" TEXT,
ADD COLUMN     "token_rotated_at" TIMESTAMPTZ(3),
ADD COLUMN     "waba_id" TEXT;

-- CreateTable
CREATE TABLE "template_statuses" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "language" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "meta_template_id" TEXT,
    "reason" TEXT,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "template_statuses_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "held_changes" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "action" TEXT NOT NULL,
    "payload_enc" TEXT NOT NULL,
    "requested_by" TEXT NOT NULL,
    "requested_key_id" UUID,
    "verification_id" UUID,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "resolved_at" TIMESTAMPTZ(3),
    "result" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "held_changes_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "template_statuses_tenant_id_name_language_key" ON "template_statuses"("tenant_id", "name", "language");

-- CreateIndex
CREATE INDEX "held_changes_tenant_id_status_idx" ON "held_changes"("tenant_id", "status");

-- CreateIndex
CREATE INDEX "tenants_waba_id_idx" ON "tenants"("waba_id");

-- AddForeignKey
ALTER TABLE "template_statuses" ADD CONSTRAINT "template_statuses_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "held_changes" ADD CONSTRAINT "held_changes_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

