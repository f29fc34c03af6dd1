-- Inventory: materials, warehouses, stock levels (warehouse × material), the append-only stock
-- ledger (partitioned by month), reservations for shipments, material-supplier links (m:n
-- material × supplier partner id), and the idempotency claims of operations.
--
-- Runs as inventory_owner; the service runs as inventory_app (no ownership, no BYPASSRLS).
-- Every table forces row-level security with tenant isolation; a supplier user (app.partner_id)
-- sees only its own material-supplier links.
--
-- The books cannot disagree, whatever the service does:
-- - inventory_app cannot write stock_levels or stock_movements at all. The only way to change a
--   level is inventory.move_stock(), which updates the level and appends its ledger entry in one
--   statement, so on_hand is the sum of the ledger's on_hand_change by construction;
-- - CHECKs keep on_hand >= 0, reserved >= 0 and reserved <= on_hand;
-- - deferred constraint triggers refuse, at commit, any transaction after which a level's
--   reserved differs from the sum of its held reservations.

CREATE FUNCTION inventory.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Set for customer and supplier users; NULL for internal users.
CREATE FUNCTION inventory.current_partner_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.partner_id', true), '')::uuid $$;

CREATE FUNCTION inventory.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        IF NEW.version IS DISTINCT FROM OLD.version THEN NEW.updated_at := now(); END IF;
        RETURN NEW;
    END $$;

-- Materials -----------------------------------------------------------------------------------

CREATE TABLE inventory.materials (
    tenant_id      uuid          NOT NULL,
    id             uuid          NOT NULL,
    sku            text          NOT NULL CHECK (sku ~ '^[A-Z0-9][A-Z0-9._/-]{0,63}$'),
    name           text          NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description    text          NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    unit           text          NOT NULL CHECK (unit IN ('piece', 'kilogram', 'tonne', 'litre',
                                                          'cubic_metre', 'metre', 'square_metre', 'pallet')),
    unit_weight_kg numeric(14,4) NOT NULL DEFAULT 0 CHECK (unit_weight_kg >= 0),
    unit_volume_m3 numeric(14,6) NOT NULL DEFAULT 0 CHECK (unit_volume_m3 >= 0),
    -- UN dangerous-goods class or division; NULL when not hazardous.
    hazard_class   text          CHECK (hazard_class IN ('1.1', '1.2', '1.3', '1.4', '1.5', '1.6',
                                                         '2.1', '2.2', '2.3', '3', '4.1', '4.2', '4.3',
                                                         '5.1', '5.2', '6.1', '6.2', '7', '8', '9')),
    reorder_point  numeric(18,3) NOT NULL DEFAULT 0 CHECK (reorder_point >= 0),
    status         text          NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'discontinued')),
    created_at     timestamptz   NOT NULL DEFAULT now(),
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    version        integer       NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at     timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- SKU unique per tenant among live materials; also ListMaterials by sku.
CREATE UNIQUE INDEX materials_sku_key ON inventory.materials (tenant_id, sku) WHERE deleted_at IS NULL;
CREATE INDEX materials_by_sku ON inventory.materials (tenant_id, sku, id);
CREATE INDEX materials_by_name ON inventory.materials (tenant_id, lower(name), id);

CREATE TRIGGER materials_touch BEFORE UPDATE ON inventory.materials
    FOR EACH ROW EXECUTE FUNCTION inventory.touch_updated_at();

-- Warehouses ----------------------------------------------------------------------------------

CREATE TABLE inventory.warehouses (
    tenant_id    uuid             NOT NULL,
    id           uuid             NOT NULL,
    code         text             NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{0,15}$'),
    name         text             NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    address_line text             NOT NULL CHECK (char_length(address_line) BETWEEN 1 AND 200),
    city         text             NOT NULL CHECK (char_length(city) BETWEEN 1 AND 100),
    postal_code  text             NOT NULL DEFAULT '' CHECK (char_length(postal_code) <= 20),
    country_code char(2)          NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    latitude     double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude    double precision CHECK (longitude BETWEEN -180 AND 180),
    status       text             NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    created_at   timestamptz      NOT NULL DEFAULT now(),
    updated_at   timestamptz      NOT NULL DEFAULT now(),
    version      integer          NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    -- A code is printed on labels and pallets: unique per tenant, deleted warehouses included.
    CONSTRAINT warehouses_code_key UNIQUE (tenant_id, code),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);

CREATE TRIGGER warehouses_touch BEFORE UPDATE ON inventory.warehouses
    FOR EACH ROW EXECUTE FUNCTION inventory.touch_updated_at();

-- Stock levels --------------------------------------------------------------------------------

CREATE TABLE inventory.stock_levels (
    tenant_id    uuid          NOT NULL,
    warehouse_id uuid          NOT NULL,
    material_id  uuid          NOT NULL,
    on_hand      numeric(18,3) NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved     numeric(18,3) NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    created_at   timestamptz   NOT NULL DEFAULT now(),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    version      integer       NOT NULL DEFAULT 1 CHECK (version > 0),
    PRIMARY KEY (tenant_id, warehouse_id, material_id),
    FOREIGN KEY (tenant_id, warehouse_id) REFERENCES inventory.warehouses (tenant_id, id),
    FOREIGN KEY (tenant_id, material_id) REFERENCES inventory.materials (tenant_id, id),
    CONSTRAINT stock_levels_reserved_within_on_hand CHECK (reserved <= on_hand)
);
-- ListStockLevels by material across warehouses, and the available-stock view.
CREATE INDEX stock_levels_by_material ON inventory.stock_levels (tenant_id, material_id, warehouse_id);

-- The ledger ----------------------------------------------------------------------------------

CREATE TABLE inventory.stock_movements (
    tenant_id       uuid          NOT NULL,
    id              uuid          NOT NULL,
    warehouse_id    uuid          NOT NULL,
    material_id     uuid          NOT NULL,
    kind            text          NOT NULL,
    on_hand_change  numeric(18,3) NOT NULL,
    reserved_change numeric(18,3) NOT NULL,
    on_hand_after   numeric(18,3) NOT NULL CHECK (on_hand_after >= 0),
    reserved_after  numeric(18,3) NOT NULL CHECK (reserved_after >= 0),
    reason          text          NOT NULL DEFAULT '' CHECK (char_length(reason) <= 500),
    reference_type  text          CHECK (reference_type ~ '^[a-z0-9_]{1,50}$'),
    reference_id    uuid,
    idempotency_key uuid          NOT NULL,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, created_at, id),
    CHECK ((reference_type IS NULL) = (reference_id IS NULL)),
    -- Each kind moves what it says and nothing else.
    CONSTRAINT stock_movements_kind_changes CHECK (CASE kind
        WHEN 'receipt'      THEN on_hand_change > 0 AND reserved_change = 0
        WHEN 'issue'        THEN on_hand_change < 0 AND reserved_change = 0
        WHEN 'adjustment'   THEN on_hand_change <> 0 AND reserved_change = 0 AND reason <> ''
        WHEN 'transfer_out' THEN on_hand_change < 0 AND reserved_change = 0
        WHEN 'transfer_in'  THEN on_hand_change > 0 AND reserved_change = 0
        WHEN 'reserve'      THEN on_hand_change = 0 AND reserved_change > 0
        WHEN 'release'      THEN on_hand_change = 0 AND reserved_change < 0
        WHEN 'consume'      THEN on_hand_change < 0 AND reserved_change = on_hand_change
        ELSE false END)
) PARTITION BY RANGE (created_at);
-- ListStockMovements: newest first per warehouse and material, and by reference.
CREATE INDEX stock_movements_by_level ON inventory.stock_movements (tenant_id, warehouse_id, material_id, created_at DESC, id DESC);
CREATE INDEX stock_movements_by_reference ON inventory.stock_movements (tenant_id, reference_type, reference_id)
    WHERE reference_id IS NOT NULL;
CREATE INDEX stock_movements_by_time ON inventory.stock_movements (tenant_id, created_at DESC, id DESC);

-- Monthly partitions from this month to `months_ahead` months ahead, created as the owner
-- (SECURITY DEFINER) so the service can call it at start and daily without owning anything.
-- The runtime role gets no right on a partition itself: it reads the ledger through the parent,
-- where row-level security applies, and never writes it but through move_stock().
CREATE FUNCTION inventory.ensure_movement_partitions(months_ahead integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    name text;
    created integer := 0;
BEGIN
    IF months_ahead NOT BETWEEN 0 AND 36 THEN
        RAISE EXCEPTION 'months_ahead must be 0 to 36';
    END IF;
    FOR i IN 0..months_ahead LOOP
        name := format('stock_movements_%s', to_char(month, 'YYYY_MM'));
        IF to_regclass(format('inventory.%I', name)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE inventory.%I PARTITION OF inventory.stock_movements
                     FOR VALUES FROM (%L) TO (%L)',
                name, month::text || ' 00:00:00+00', (month + interval '1 month')::date::text || ' 00:00:00+00');
            EXECUTE format('REVOKE ALL ON inventory.%I FROM PUBLIC, inventory_app', name);
            created := created + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;
REVOKE ALL ON FUNCTION inventory.ensure_movement_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.ensure_movement_partitions(integer) TO inventory_app;

SELECT inventory.ensure_movement_partitions(3);

-- The one writer of levels and ledger: applies the changes to the level (creating it at zero)
-- and appends the entry with the resulting balances, in one statement of the caller's
-- transaction. The CHECKs on stock_levels refuse a level that would go negative or reserve more
-- than it holds. Runs as the owner, under the caller's row-level-security context (tables force
-- it on their owner too).
CREATE FUNCTION inventory.move_stock(
    p_id uuid, p_warehouse_id uuid, p_material_id uuid, p_kind text,
    p_on_hand_change numeric, p_reserved_change numeric, p_reason text,
    p_reference_type text, p_reference_id uuid, p_idempotency_key uuid
) RETURNS inventory.stock_movements
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant uuid := inventory.current_tenant_id();
    level inventory.stock_levels;
    entry inventory.stock_movements;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant in context' USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- A level that never moved starts at zero; the change is then an UPDATE either way, so the
    -- CHECKs judge the resulting balances (an INSERT ... ON CONFLICT would check the change
    -- itself as if it were the balance).
    INSERT INTO inventory.stock_levels (tenant_id, warehouse_id, material_id)
    VALUES (tenant, p_warehouse_id, p_material_id)
    ON CONFLICT (tenant_id, warehouse_id, material_id) DO NOTHING;
    UPDATE inventory.stock_levels l
       SET on_hand = l.on_hand + p_on_hand_change, reserved = l.reserved + p_reserved_change,
           version = l.version + 1, updated_at = now()
     WHERE l.tenant_id = tenant AND l.warehouse_id = p_warehouse_id AND l.material_id = p_material_id
    RETURNING * INTO level;
    INSERT INTO inventory.stock_movements (tenant_id, id, warehouse_id, material_id, kind,
        on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference_type,
        reference_id, idempotency_key)
    VALUES (tenant, p_id, p_warehouse_id, p_material_id, p_kind, p_on_hand_change,
        p_reserved_change, level.on_hand, level.reserved, coalesce(p_reason, ''),
        p_reference_type, p_reference_id, p_idempotency_key)
    RETURNING * INTO entry;
    RETURN entry;
END $$;
REVOKE ALL ON FUNCTION inventory.move_stock(uuid, uuid, uuid, text, numeric, numeric, text, text, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.move_stock(uuid, uuid, uuid, text, numeric, numeric, text, text, uuid, uuid) TO inventory_app;

-- Locks the given levels (FOR UPDATE, in one order so that two operations never deadlock) and
-- returns them, for an operation that must see them settled before it decides: the runtime role
-- has no UPDATE right on stock_levels, which a plain SELECT ... FOR UPDATE would need. Levels
-- that do not exist yet are simply not returned (they are zero).
CREATE FUNCTION inventory.lock_levels(p_warehouse_ids uuid[], p_material_ids uuid[])
    RETURNS SETOF inventory.stock_levels
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT l.* FROM inventory.stock_levels l
      JOIN unnest(p_warehouse_ids, p_material_ids) AS k(warehouse_id, material_id)
        ON l.warehouse_id = k.warehouse_id AND l.material_id = k.material_id
     WHERE l.tenant_id = inventory.current_tenant_id()
     ORDER BY l.warehouse_id, l.material_id
       FOR UPDATE OF l
$$;
REVOKE ALL ON FUNCTION inventory.lock_levels(uuid[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.lock_levels(uuid[], uuid[]) TO inventory_app;

-- Reservations --------------------------------------------------------------------------------

CREATE TABLE inventory.reservations (
    tenant_id    uuid          NOT NULL,
    id           uuid          NOT NULL,
    shipment_id  uuid          NOT NULL,
    warehouse_id uuid          NOT NULL,
    material_id  uuid          NOT NULL,
    quantity     numeric(18,3) NOT NULL CHECK (quantity > 0),
    status       text          NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'released', 'consumed')),
    created_at   timestamptz   NOT NULL DEFAULT now(),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    version      integer       NOT NULL DEFAULT 1 CHECK (version > 0),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT reservations_line_key UNIQUE (tenant_id, shipment_id, warehouse_id, material_id),
    FOREIGN KEY (tenant_id, warehouse_id, material_id)
        REFERENCES inventory.stock_levels (tenant_id, warehouse_id, material_id)
);
-- The held sum per level (the deferred check below, CheckStockLedger).
CREATE INDEX reservations_held_by_level ON inventory.reservations (tenant_id, warehouse_id, material_id)
    WHERE status = 'held';

CREATE TRIGGER reservations_touch BEFORE UPDATE ON inventory.reservations
    FOR EACH ROW EXECUTE FUNCTION inventory.touch_updated_at();

-- At commit: the level's reserved equals the sum of its held reservations.
CREATE FUNCTION inventory.check_reserved_matches_held() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    held numeric;
    reserved numeric;
BEGIN
    SELECT coalesce(sum(r.quantity), 0) INTO held FROM inventory.reservations r
     WHERE r.tenant_id = NEW.tenant_id AND r.warehouse_id = NEW.warehouse_id
       AND r.material_id = NEW.material_id AND r.status = 'held';
    SELECT l.reserved INTO reserved FROM inventory.stock_levels l
     WHERE l.tenant_id = NEW.tenant_id AND l.warehouse_id = NEW.warehouse_id
       AND l.material_id = NEW.material_id;
    IF coalesce(reserved, 0) <> held THEN
        RAISE EXCEPTION 'reserved stock does not match held reservations'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'stock_levels_reserved_matches_held';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER reservations_match_levels AFTER INSERT OR UPDATE ON inventory.reservations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION inventory.check_reserved_matches_held();
CREATE CONSTRAINT TRIGGER levels_match_reservations AFTER INSERT OR UPDATE ON inventory.stock_levels
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION inventory.check_reserved_matches_held();

-- Material-supplier links ---------------------------------------------------------------------

CREATE TABLE inventory.material_suppliers (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    material_id      uuid        NOT NULL,
    -- A partner id of the partner service (no foreign key across schemas).
    supplier_id      uuid        NOT NULL,
    supplier_sku     text        NOT NULL DEFAULT '' CHECK (char_length(supplier_sku) <= 64),
    lead_time_days   integer     NOT NULL DEFAULT 0 CHECK (lead_time_days BETWEEN 0 AND 365),
    unit_price_minor bigint      NOT NULL CHECK (unit_price_minor >= 0),
    currency_code    char(3)     NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    preferred        boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at       timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, material_id) REFERENCES inventory.materials (tenant_id, id)
);
-- One live link per material and supplier; at most one live preferred supplier per material.
CREATE UNIQUE INDEX material_suppliers_pair_key ON inventory.material_suppliers (tenant_id, material_id, supplier_id)
    WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX material_suppliers_one_preferred ON inventory.material_suppliers (tenant_id, material_id)
    WHERE preferred AND deleted_at IS NULL;
-- A supplier's own links (supplier users, `supplier_id = ...` filters).
CREATE INDEX material_suppliers_by_supplier ON inventory.material_suppliers (tenant_id, supplier_id, created_at, id);
CREATE INDEX material_suppliers_by_time ON inventory.material_suppliers (tenant_id, created_at, id);

CREATE TRIGGER material_suppliers_touch BEFORE UPDATE ON inventory.material_suppliers
    FOR EACH ROW EXECUTE FUNCTION inventory.touch_updated_at();

-- Idempotency claims of Create calls and stock operations --------------------------------------

CREATE TABLE inventory.idempotency_keys (
    tenant_id    uuid        NOT NULL,
    method       text        NOT NULL,
    request_id   uuid        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, method, request_id)
);

-- Available stock per material across warehouses ------------------------------------------------

CREATE VIEW inventory.available_stock WITH (security_invoker = true) AS
SELECT l.tenant_id, l.material_id, count(*) AS warehouses, sum(l.on_hand) AS on_hand,
       sum(l.reserved) AS reserved, sum(l.on_hand - l.reserved) AS available
  FROM inventory.stock_levels l
  JOIN inventory.warehouses w ON w.tenant_id = l.tenant_id AND w.id = l.warehouse_id
 WHERE w.deleted_at IS NULL
 GROUP BY l.tenant_id, l.material_id;

-- Row-level security ----------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['materials', 'warehouses', 'stock_levels', 'stock_movements',
                             'reservations', 'material_suppliers', 'idempotency_keys']
    LOOP
        EXECUTE format('ALTER TABLE inventory.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE inventory.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON inventory.%I
                            USING (tenant_id = inventory.current_tenant_id())
                            WITH CHECK (tenant_id = inventory.current_tenant_id())', t);
    END LOOP;
END $$;

-- A supplier user sees only its own links (restrictive: narrows tenant isolation).
CREATE POLICY own_supplier_links ON inventory.material_suppliers AS RESTRICTIVE
    USING (inventory.current_partner_id() IS NULL OR supplier_id = inventory.current_partner_id());

-- The runtime role reads levels and the ledger but writes them only through move_stock();
-- nothing is hard-deleted but idempotency claims (retention).
REVOKE INSERT, UPDATE, DELETE ON inventory.stock_levels, inventory.stock_movements FROM inventory_app;
REVOKE DELETE ON inventory.materials, inventory.warehouses, inventory.reservations,
    inventory.material_suppliers FROM inventory_app;
