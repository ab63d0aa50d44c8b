-- Messaging-limit usage (src/limits/messaging-limit.ts): business-initiated templates sent per tenant in the last
-- 24 hours. Hand-written: Prisma's schema language has no partial indexes.
CREATE INDEX "messages_outbound_templates_sent_idx" ON "messages" ("tenant_id", "sent_at") WHERE "direction" = 'outbound' AND "type" = 'template';
