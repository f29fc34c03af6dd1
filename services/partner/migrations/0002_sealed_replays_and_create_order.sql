-- Stored CreatePartner and CreateContact responses carry personal data and are sealed by the
-- service; key rotation re-seals them too, so it may read and update them across tenants.
CREATE POLICY key_rotation_read ON partner.idempotency_keys FOR SELECT
    USING (partner.has_app_role('system'));
CREATE POLICY key_rotation_write ON partner.idempotency_keys FOR UPDATE
    USING (partner.has_app_role('system')) WITH CHECK (partner.has_app_role('system'));

-- ListPartners `order_by = "create_time"`: keyset on (created_at, id). Concurrent creates take
-- ids and creation times in different orders, so the id alone does not follow create_time.
CREATE INDEX partners_by_create_time ON partner.partners (tenant_id, created_at, id);
