-- Partner: partners with their roles (m:n-like through partner_roles), 1:1 supplier and
-- customer profiles, 1:n contacts and addresses, and the idempotency claims of Create calls.
--
-- Runs as partner_owner; the service runs as partner_app (no ownership, no BYPASSRLS). Every
-- table forces row-level security: tenant isolation, plus a restrictive policy that confines a
-- caller with `app.partner_id` (customer and supplier users) to that partner's rows.
-- Tax ids, e-mail addresses and phone numbers are stored only as AEAD ciphertexts sealed by the
-- service (key id inside each), with keyed-HMAC blind indexes where equality lookup is needed.

CREATE FUNCTION partner.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Set for customer and supplier users; NULL for internal users.
CREATE FUNCTION partner.current_partner_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.partner_id', true), '')::uuid $$;

CREATE FUNCTION partner.has_app_role(role_name text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(role_name = ANY (string_to_array(NULLIF(current_setting('app.roles', true), ''), ',')), false) $$;

-- updated_at follows the version: re-sealing a ciphertext with a new key changes no value, so
-- it bumps neither.
CREATE FUNCTION partner.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        IF NEW.version IS DISTINCT FROM OLD.version THEN NEW.updated_at := now(); END IF;
        RETURN NEW;
    END $$;

-- The key id inside a sealed value (version byte, id length, id, nonce, ciphertext): what key
-- rotation looks for.
CREATE FUNCTION partner.sealed_key_id(sealed bytea) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT convert_from(substring(sealed from 3 for get_byte(sealed, 1)), 'UTF8') $$;

-- Partners ------------------------------------------------------------------------------------

CREATE TABLE partner.partners (
    tenant_id             uuid        NOT NULL,
    id                    uuid        NOT NULL,
    kind                  text        NOT NULL CHECK (kind IN ('organization', 'person')),
    legal_name            text        NOT NULL CHECK (char_length(legal_name) BETWEEN 1 AND 300),
    display_name          text        NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 200),
    -- Sealed tax id and its blind index: both or neither.
    tax_id_ciphertext     bytea,
    tax_id_index          bytea       CHECK (octet_length(tax_id_index) = 32),
    country_code          char(2)     NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    default_currency_code char(3)     NOT NULL CHECK (default_currency_code ~ '^[A-Z]{3}$'),
    status                text        NOT NULL DEFAULT 'active'
                                      CHECK (status IN ('active', 'inactive', 'blocked')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    version               integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at            timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK ((tax_id_ciphertext IS NULL) = (tax_id_index IS NULL))
);

-- A tax id is unique per tenant and country among live partners (through its blind index);
-- also the LookupPartnerByTaxId path.
CREATE UNIQUE INDEX partners_tax_id_key ON partner.partners (tenant_id, country_code, tax_id_index)
    WHERE deleted_at IS NULL AND tax_id_index IS NOT NULL;
-- Default listing and `display_name = "prefix*"`: keyset on (lower(display_name), id), and
-- text_pattern_ops so LIKE 'prefix%' can use it whatever the collation.
CREATE INDEX partners_name_order ON partner.partners (tenant_id, lower(display_name) text_pattern_ops, id);
-- Filters on country and status among live partners.
CREATE INDEX partners_country ON partner.partners (tenant_id, country_code) WHERE deleted_at IS NULL;
CREATE INDEX partners_status ON partner.partners (tenant_id, status) WHERE deleted_at IS NULL;

CREATE TRIGGER partners_touch BEFORE UPDATE ON partner.partners
    FOR EACH ROW EXECUTE FUNCTION partner.touch_updated_at();

CREATE TABLE partner.partner_roles (
    tenant_id  uuid        NOT NULL,
    partner_id uuid        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('supplier', 'customer', 'carrier')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, partner_id, role),
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partner.partners (tenant_id, id)
);
-- `role = PARTNER_ROLE_SUPPLIER` filters.
CREATE INDEX partner_roles_by_role ON partner.partner_roles (tenant_id, role, partner_id);

-- Profiles: 1:1 with a partner holding the role. The foreign key to partner_roles makes a
-- profile impossible without the role, and the role impossible to remove while a profile
-- exists (RESTRICT), whatever the service does.

CREATE TABLE partner.supplier_profiles (
    tenant_id             uuid        NOT NULL,
    partner_id            uuid        NOT NULL,
    role                  text        NOT NULL DEFAULT 'supplier' CHECK (role = 'supplier'),
    payment_terms_days    integer     NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 365),
    lead_time_days        integer     NOT NULL DEFAULT 0 CHECK (lead_time_days BETWEEN 0 AND 365),
    credit_limit_minor    bigint      CHECK (credit_limit_minor >= 0),
    credit_currency_code  char(3)     CHECK (credit_currency_code ~ '^[A-Z]{3}$'),
    rating                smallint    CHECK (rating BETWEEN 1 AND 5),
    notes                 text        NOT NULL DEFAULT '' CHECK (char_length(notes) <= 2000),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    version               integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    PRIMARY KEY (tenant_id, partner_id),
    FOREIGN KEY (tenant_id, partner_id, role)
        REFERENCES partner.partner_roles (tenant_id, partner_id, role) ON DELETE RESTRICT,
    CHECK ((credit_limit_minor IS NULL) = (credit_currency_code IS NULL))
);

CREATE TABLE partner.customer_profiles (
    tenant_id             uuid        NOT NULL,
    partner_id            uuid        NOT NULL,
    role                  text        NOT NULL DEFAULT 'customer' CHECK (role = 'customer'),
    payment_terms_days    integer     NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 365),
    credit_limit_minor    bigint      CHECK (credit_limit_minor >= 0),
    credit_currency_code  char(3)     CHECK (credit_currency_code ~ '^[A-Z]{3}$'),
    rating                smallint    CHECK (rating BETWEEN 1 AND 5),
    notes                 text        NOT NULL DEFAULT '' CHECK (char_length(notes) <= 2000),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    version               integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    PRIMARY KEY (tenant_id, partner_id),
    FOREIGN KEY (tenant_id, partner_id, role)
        REFERENCES partner.partner_roles (tenant_id, partner_id, role) ON DELETE RESTRICT,
    CHECK ((credit_limit_minor IS NULL) = (credit_currency_code IS NULL))
);

CREATE TRIGGER supplier_profiles_touch BEFORE UPDATE ON partner.supplier_profiles
    FOR EACH ROW EXECUTE FUNCTION partner.touch_updated_at();
CREATE TRIGGER customer_profiles_touch BEFORE UPDATE ON partner.customer_profiles
    FOR EACH ROW EXECUTE FUNCTION partner.touch_updated_at();

-- Contacts ------------------------------------------------------------------------------------

CREATE TABLE partner.contacts (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    partner_id       uuid        NOT NULL,
    name             text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    job_title        text        NOT NULL DEFAULT '' CHECK (char_length(job_title) <= 100),
    email_ciphertext bytea,
    phone_ciphertext bytea,
    is_primary       boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at       timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partner.partners (tenant_id, id),
    -- A contact nobody can reach is not a contact.
    CHECK (email_ciphertext IS NOT NULL OR phone_ciphertext IS NOT NULL)
);
-- At most one live primary contact per partner.
CREATE UNIQUE INDEX contacts_one_primary ON partner.contacts (tenant_id, partner_id)
    WHERE is_primary AND deleted_at IS NULL;
-- ListContacts: primary first, then name, id.
CREATE INDEX contacts_by_partner ON partner.contacts (tenant_id, partner_id, is_primary DESC, lower(name), id);

CREATE TRIGGER contacts_touch BEFORE UPDATE ON partner.contacts
    FOR EACH ROW EXECUTE FUNCTION partner.touch_updated_at();

-- Addresses -----------------------------------------------------------------------------------

CREATE TABLE partner.addresses (
    tenant_id    uuid             NOT NULL,
    id           uuid             NOT NULL,
    partner_id   uuid             NOT NULL,
    kind         text             NOT NULL CHECK (kind IN ('billing', 'shipping', 'pickup')),
    line1        text             NOT NULL CHECK (char_length(line1) BETWEEN 1 AND 200),
    line2        text             NOT NULL DEFAULT '' CHECK (char_length(line2) <= 200),
    city         text             NOT NULL CHECK (char_length(city) BETWEEN 1 AND 100),
    region       text             NOT NULL DEFAULT '' CHECK (char_length(region) <= 100),
    postal_code  text             NOT NULL DEFAULT '' CHECK (char_length(postal_code) <= 20),
    country_code char(2)          NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    latitude     double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude    double precision CHECK (longitude BETWEEN -180 AND 180),
    is_default   boolean          NOT NULL DEFAULT false,
    created_at   timestamptz      NOT NULL DEFAULT now(),
    updated_at   timestamptz      NOT NULL DEFAULT now(),
    version      integer          NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partner.partners (tenant_id, id),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
-- At most one live default address per partner and kind.
CREATE UNIQUE INDEX addresses_one_default ON partner.addresses (tenant_id, partner_id, kind)
    WHERE is_default AND deleted_at IS NULL;
-- ListAddresses: defaults first, then kind, id.
CREATE INDEX addresses_by_partner ON partner.addresses (tenant_id, partner_id, is_default DESC, kind, id);

CREATE TRIGGER addresses_touch BEFORE UPDATE ON partner.addresses
    FOR EACH ROW EXECUTE FUNCTION partner.touch_updated_at();

-- Idempotency claims of Create calls (AIP-155) -------------------------------------------------

CREATE TABLE partner.idempotency_keys (
    tenant_id    uuid        NOT NULL,
    method       text        NOT NULL,
    request_id   uuid        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, method, request_id)
);
CREATE INDEX idempotency_keys_age ON partner.idempotency_keys (created_at);

-- A partner with its role names, what every partner read returns (security_invoker: the
-- caller's policies apply underneath).
CREATE VIEW partner.partner_records WITH (security_invoker = true) AS
SELECT p.tenant_id, p.id, p.kind, p.legal_name, p.display_name, lower(p.display_name) AS name_key,
       p.tax_id_ciphertext, p.country_code, p.default_currency_code, p.status,
       p.created_at, p.updated_at, p.version, p.deleted_at,
       ARRAY(SELECT r.role FROM partner.partner_roles r
              WHERE r.tenant_id = p.tenant_id AND r.partner_id = p.id ORDER BY r.role) AS roles
  FROM partner.partners p;

-- Row-level security ---------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['partners', 'partner_roles', 'supplier_profiles', 'customer_profiles',
                             'contacts', 'addresses', 'idempotency_keys']
    LOOP
        EXECUTE format('ALTER TABLE partner.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE partner.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON partner.%I
                            USING (tenant_id = partner.current_tenant_id())
                            WITH CHECK (tenant_id = partner.current_tenant_id())', t);
    END LOOP;
    -- Customer and supplier users: their own partner's rows only (restrictive: narrows the
    -- tenant policy, never widens it).
    FOREACH t IN ARRAY ARRAY['partner_roles', 'supplier_profiles', 'customer_profiles', 'contacts',
                             'addresses']
    LOOP
        EXECUTE format('CREATE POLICY own_partner_only ON partner.%I AS RESTRICTIVE
                            USING (partner.current_partner_id() IS NULL
                                   OR partner_id = partner.current_partner_id())
                            WITH CHECK (partner.current_partner_id() IS NULL
                                        OR partner_id = partner.current_partner_id())', t);
    END LOOP;
END $$;

CREATE POLICY own_partner_only ON partner.partners AS RESTRICTIVE
    USING (partner.current_partner_id() IS NULL OR id = partner.current_partner_id())
    WITH CHECK (partner.current_partner_id() IS NULL OR id = partner.current_partner_id());

-- Key rotation (`partner rotate-keys`) re-seals ciphertexts of every tenant. It runs with the
-- service's 'system' context, which no access token can carry; it may read and update only.
CREATE POLICY key_rotation_read ON partner.partners FOR SELECT USING (partner.has_app_role('system'));
CREATE POLICY key_rotation_write ON partner.partners FOR UPDATE
    USING (partner.has_app_role('system')) WITH CHECK (partner.has_app_role('system'));
CREATE POLICY key_rotation_read ON partner.contacts FOR SELECT USING (partner.has_app_role('system'));
CREATE POLICY key_rotation_write ON partner.contacts FOR UPDATE
    USING (partner.has_app_role('system')) WITH CHECK (partner.has_app_role('system'));

-- Nothing is ever hard-deleted by the service except roles and profiles (whose history lives
-- in the partner's version) and idempotency claims (retention).
REVOKE DELETE ON partner.partners, partner.contacts, partner.addresses FROM partner_app;
