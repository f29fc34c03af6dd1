-- Key rotation (`fleet rotate-keys`) re-seals licence numbers, phones and stored CreateDriver
-- responses of every tenant. It runs with the service's 'system' context, which no access
-- token can carry; it may read and update only.

CREATE FUNCTION fleet.has_app_role(role_name text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(role_name = ANY (string_to_array(NULLIF(current_setting('app.roles', true), ''), ',')), false) $$;

-- The key id inside a sealed value (version byte, id length, id, nonce, ciphertext).
CREATE FUNCTION fleet.sealed_key_id(sealed bytea) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT convert_from(substring(sealed from 3 for get_byte(sealed, 1)), 'UTF8') $$;

CREATE POLICY key_rotation_read ON fleet.drivers FOR SELECT USING (fleet.has_app_role('system'));
CREATE POLICY key_rotation_write ON fleet.drivers FOR UPDATE
    USING (fleet.has_app_role('system')) WITH CHECK (fleet.has_app_role('system'));
CREATE POLICY key_rotation_read ON fleet.idempotency_keys FOR SELECT USING (fleet.has_app_role('system'));
CREATE POLICY key_rotation_write ON fleet.idempotency_keys FOR UPDATE
    USING (fleet.has_app_role('system')) WITH CHECK (fleet.has_app_role('system'));
