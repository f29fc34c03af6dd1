-- Identity: tenants, users, roles (m:n through user_roles), sessions with single-use refresh
-- tokens, token signing keys, and the idempotency claims of Create calls.
--
-- Runs as identity_owner. The service runs as identity_app, which owns nothing and cannot
-- bypass row-level security; every table forces RLS, so even the owner is subject to it.
-- Policies read the request context as NULLIF(current_setting('app.x', true), ''), so a
-- transaction without context sees and writes nothing instead of failing open.

CREATE FUNCTION identity.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE FUNCTION identity.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$;

CREATE FUNCTION identity.has_app_role(role_name text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(role_name = ANY (string_to_array(NULLIF(current_setting('app.roles', true), ''), ',')), false) $$;

-- Keeps updated_at honest whatever the statement forgot.
CREATE FUNCTION identity.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

-- Tenants -------------------------------------------------------------------------------------

CREATE TABLE identity.tenants (
    id           uuid        NOT NULL PRIMARY KEY,
    display_name text        NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 200
                                             AND display_name = btrim(display_name)),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer     NOT NULL DEFAULT 1 CHECK (version > 0)
);

ALTER TABLE identity.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.tenants FORCE ROW LEVEL SECURITY;
-- A tenant sees itself; creating tenants is a platform operation.
CREATE POLICY tenant_isolation ON identity.tenants
    USING (id = identity.current_tenant_id()
           OR identity.has_app_role('platform_admin')
           OR identity.has_app_role('system'))
    WITH CHECK (identity.has_app_role('platform_admin') OR identity.has_app_role('system'));

CREATE TRIGGER tenants_touch BEFORE UPDATE ON identity.tenants
    FOR EACH ROW EXECUTE FUNCTION identity.touch_updated_at();

-- Roles: a per-tenant catalog of the platform's roles ------------------------------------------

CREATE TABLE identity.roles (
    tenant_id   uuid        NOT NULL REFERENCES identity.tenants (id),
    id          uuid        NOT NULL,
    name        text        NOT NULL CHECK (name IN ('admin', 'dispatcher', 'warehouse_clerk',
                                                     'fleet_manager', 'auditor', 'customer',
                                                     'supplier', 'driver', 'platform_admin')),
    description text        NOT NULL CHECK (char_length(description) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT roles_name_key UNIQUE (tenant_id, name)
);

-- Users ---------------------------------------------------------------------------------------

CREATE TABLE identity.users (
    tenant_id           uuid        NOT NULL REFERENCES identity.tenants (id),
    id                  uuid        NOT NULL,
    email               text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254
                                                    AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    display_name        text        NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 200),
    -- PHC string of an argon2id hash; never the password.
    password_hash       text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    -- IDs in other services' schemas: no foreign key across schemas by design.
    partner_id          uuid,
    driver_id           uuid,
    failed_login_count  integer     NOT NULL DEFAULT 0 CHECK (failed_login_count >= 0),
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at          timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- E-mail is unique per tenant, case-insensitively, among users that are not deleted. It is also
-- the login lookup path.
CREATE UNIQUE INDEX users_email_key ON identity.users (tenant_id, lower(email))
    WHERE deleted_at IS NULL;
-- Keyset pagination by e-mail (order_by = "email"), deleted rows included.
CREATE INDEX users_email_order ON identity.users (tenant_id, lower(email), id);

CREATE TRIGGER users_touch BEFORE UPDATE ON identity.users
    FOR EACH ROW EXECUTE FUNCTION identity.touch_updated_at();

CREATE TABLE identity.user_roles (
    tenant_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    role_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, role_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES identity.users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, role_id) REFERENCES identity.roles (tenant_id, id)
);
-- "Who holds role X" (ListUsers filter role = ...).
CREATE INDEX user_roles_by_role ON identity.user_roles (tenant_id, role_id);

-- A user with its role names: what every user read returns. security_invoker, so the caller's
-- row-level security applies to the tables underneath.
CREATE VIEW identity.user_accounts WITH (security_invoker = true) AS
SELECT u.tenant_id, u.id, u.email, lower(u.email) AS email_key, u.display_name, u.partner_id, u.driver_id,
       u.failed_login_count, u.locked_until, u.created_at, u.updated_at, u.version, u.deleted_at,
       ARRAY(SELECT r.name
               FROM identity.user_roles ur
               JOIN identity.roles r ON r.tenant_id = ur.tenant_id AND r.id = ur.role_id
              WHERE ur.tenant_id = u.tenant_id AND ur.user_id = u.id
              ORDER BY r.name) AS roles
  FROM identity.users u;

-- Sessions and refresh tokens -------------------------------------------------------------------

CREATE TABLE identity.sessions (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text CHECK (revoke_reason IN ('logout', 'refresh_token_reuse',
                                                'password_change', 'user_deleted')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES identity.users (tenant_id, id) ON DELETE CASCADE,
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL)),
    CHECK (expires_at > created_at)
);
CREATE INDEX sessions_by_user ON identity.sessions (tenant_id, user_id) WHERE revoked_at IS NULL;

CREATE TRIGGER sessions_touch BEFORE UPDATE ON identity.sessions
    FOR EACH ROW EXECUTE FUNCTION identity.touch_updated_at();

-- Each refresh token is stored as the SHA-256 of its 32 random bytes, never in plain text.
CREATE TABLE identity.refresh_tokens (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    session_id uuid        NOT NULL,
    token_hash bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES identity.sessions (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT refresh_tokens_hash_key UNIQUE (tenant_id, token_hash)
);
-- A session has at most one unused refresh token: two racing refreshes cannot both win.
CREATE UNIQUE INDEX refresh_tokens_one_live_per_session ON identity.refresh_tokens (tenant_id, session_id)
    WHERE used_at IS NULL;

-- Signing keys: platform-wide, not tenant data ---------------------------------------------------

CREATE TABLE identity.signing_keys (
    id                     uuid        NOT NULL PRIMARY KEY,
    kid                    text        NOT NULL UNIQUE CHECK (kid ~ '^[A-Za-z0-9_-]{8,64}$'),
    algorithm              text        NOT NULL CHECK (algorithm = 'EdDSA'),
    public_key             bytea       NOT NULL CHECK (octet_length(public_key) = 32),
    -- The Ed25519 seed sealed with the configured key-encryption keyring (AEAD, key id inside).
    private_key_ciphertext bytea       NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    retired_at             timestamptz,
    CHECK (retired_at IS NULL OR retired_at >= created_at)
);
-- Exactly one key signs new tokens.
CREATE UNIQUE INDEX signing_keys_one_active ON identity.signing_keys ((true)) WHERE retired_at IS NULL;

-- Idempotency claims of Create calls (AIP-155) -------------------------------------------------

CREATE TABLE identity.idempotency_keys (
    tenant_id    uuid        NOT NULL,
    method       text        NOT NULL,
    request_id   uuid        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, method, request_id)
);
CREATE INDEX idempotency_keys_age ON identity.idempotency_keys (created_at);

-- Row-level security ---------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['roles', 'users', 'user_roles', 'sessions', 'refresh_tokens',
                             'idempotency_keys']
    LOOP
        EXECUTE format('ALTER TABLE identity.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE identity.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON identity.%I
                            USING (tenant_id = identity.current_tenant_id())
                            WITH CHECK (tenant_id = identity.current_tenant_id())', t);
    END LOOP;
END $$;

-- Everyone may read the public half of the signing keys (ListPublicKeys is open); only the
-- service itself (start-up, context 'system') and platform admins create or retire keys.
ALTER TABLE identity.signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity.signing_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY signing_keys_read ON identity.signing_keys FOR SELECT USING (true);
CREATE POLICY signing_keys_insert ON identity.signing_keys FOR INSERT
    WITH CHECK (identity.has_app_role('system') OR identity.has_app_role('platform_admin'));
CREATE POLICY signing_keys_retire ON identity.signing_keys FOR UPDATE
    USING (identity.has_app_role('system') OR identity.has_app_role('platform_admin'))
    WITH CHECK (identity.has_app_role('system') OR identity.has_app_role('platform_admin'));

-- The runtime role never deletes tenants, keys, users (soft delete only) or roles.
REVOKE DELETE ON identity.tenants, identity.signing_keys, identity.users, identity.roles
    FROM identity_app;
