-- Fleet: trucks, drivers, maintenance records (truck 1:n) and assignments that book a truck and
-- a driver for a shipment over a time window.
--
-- Runs as fleet_owner; the service runs as fleet_app (no ownership, no BYPASSRLS). Every table
-- forces row-level security: tenant isolation, plus a restrictive policy that confines a caller
-- with `app.driver_id` (driver users) to its own driver record and its own assignments.
-- Licence numbers and phones are stored only as AEAD ciphertexts sealed by the service, with a
-- keyed-HMAC blind index of the licence number for uniqueness.
--
-- The database is the last word on bookings: exclusion constraints (btree_gist, created by
-- `fleet provision`) forbid two active assignments of one truck or one driver that overlap in
-- time, and triggers that lock the truck and the driver refuse an assignment of a truck that is
-- not active or is in scheduled maintenance, or of a driver who is not active or whose licence
-- ends before the window does, and maintenance scheduled over an active assignment. The
-- service checks the same first only to report every reason at once.

CREATE FUNCTION fleet.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Set for driver users; NULL for internal users.
CREATE FUNCTION fleet.current_driver_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.driver_id', true), '')::uuid $$;

CREATE FUNCTION fleet.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        IF NEW.version IS DISTINCT FROM OLD.version THEN NEW.updated_at := now(); END IF;
        RETURN NEW;
    END $$;

-- ISO 3779 check digit (position 9) of a 17-character VIN without I, O and Q.
CREATE FUNCTION fleet.vin_is_valid(vin text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
DECLARE
    weights constant int[] := ARRAY[8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    letters constant text  := 'ABCDEFGHJKLMNPRSTUVWXYZ';
    values  constant int[] := ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9];
    total int := 0;
    c text;
    v int;
    remainder int;
BEGIN
    IF vin !~ '^[A-HJ-NPR-Z0-9]{17}$' THEN RETURN false; END IF;
    FOR i IN 1..17 LOOP
        c := substr(vin, i, 1);
        IF c ~ '[0-9]' THEN v := c::int; ELSE v := values[strpos(letters, c)]; END IF;
        total := total + v * weights[i];
    END LOOP;
    remainder := total % 11;
    RETURN substr(vin, 9, 1) = CASE WHEN remainder = 10 THEN 'X' ELSE remainder::text END;
END $$;

-- A window is a bounded, non-empty, half-open [start, end) range.
CREATE FUNCTION fleet.is_window(w tstzrange) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT NOT isempty(w) AND NOT lower_inf(w) AND NOT upper_inf(w)
                 AND lower_inc(w) AND NOT upper_inc(w) $$;

-- Trucks --------------------------------------------------------------------------------------

CREATE TABLE fleet.trucks (
    tenant_id           uuid          NOT NULL,
    id                  uuid          NOT NULL,
    -- As entered, upper case; `plate_key` is what makes two plates the same.
    plate               text          NOT NULL CHECK (plate ~ '^[A-Z0-9][A-Z0-9 -]{0,14}$'),
    plate_key           text          GENERATED ALWAYS AS (regexp_replace(plate, '[^A-Z0-9]', '', 'g')) STORED,
    vin                 char(17)      NOT NULL CHECK (fleet.vin_is_valid(vin)),
    make                text          NOT NULL CHECK (char_length(make) BETWEEN 1 AND 100),
    model               text          NOT NULL CHECK (char_length(model) BETWEEN 1 AND 100),
    model_year          smallint      NOT NULL CHECK (model_year BETWEEN 1950 AND 2100),
    payload_capacity_kg numeric(12,3) NOT NULL CHECK (payload_capacity_kg > 0),
    volume_capacity_m3  numeric(9,3)  NOT NULL CHECK (volume_capacity_m3 > 0),
    status              text          NOT NULL DEFAULT 'active'
                                      CHECK (status IN ('active', 'in_maintenance', 'retired')),
    odometer_km         bigint        NOT NULL DEFAULT 0 CHECK (odometer_km >= 0),
    created_at          timestamptz   NOT NULL DEFAULT now(),
    updated_at          timestamptz   NOT NULL DEFAULT now(),
    version             integer       NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at          timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Plate and VIN are unique per tenant among live trucks.
CREATE UNIQUE INDEX trucks_plate_key ON fleet.trucks (tenant_id, plate_key) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX trucks_vin_key ON fleet.trucks (tenant_id, vin) WHERE deleted_at IS NULL;
-- ListTrucks by plate (keyset on plate_key, id), with deleted ones for show_deleted.
CREATE INDEX trucks_by_plate ON fleet.trucks (tenant_id, plate_key, id);
-- FindAvailableTrucks: assignable trucks by capacity.
CREATE INDEX trucks_assignable ON fleet.trucks (tenant_id, payload_capacity_kg, volume_capacity_m3)
    WHERE deleted_at IS NULL AND status = 'active';

CREATE TRIGGER trucks_touch BEFORE UPDATE ON fleet.trucks
    FOR EACH ROW EXECUTE FUNCTION fleet.touch_updated_at();

-- Drivers -------------------------------------------------------------------------------------

CREATE TABLE fleet.drivers (
    tenant_id                 uuid        NOT NULL,
    id                        uuid        NOT NULL,
    name                      text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    licence_number_ciphertext bytea       NOT NULL,
    licence_number_index      bytea       NOT NULL CHECK (octet_length(licence_number_index) = 32),
    licence_classes           text[]      NOT NULL
        CHECK (cardinality(licence_classes) BETWEEN 1 AND 6
               AND licence_classes <@ ARRAY['b', 'be', 'c1', 'c1e', 'c', 'ce']::text[]),
    licence_expires_at        timestamptz NOT NULL,
    phone_ciphertext          bytea,
    user_id                   uuid,
    status                    text        NOT NULL DEFAULT 'active'
                                          CHECK (status IN ('active', 'inactive', 'terminated')),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    version                   integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at                timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- A licence number is unique per tenant among live drivers (through its blind index).
CREATE UNIQUE INDEX drivers_licence_key ON fleet.drivers (tenant_id, licence_number_index)
    WHERE deleted_at IS NULL;
-- One live driver per identity user.
CREATE UNIQUE INDEX drivers_user_key ON fleet.drivers (tenant_id, user_id)
    WHERE deleted_at IS NULL AND user_id IS NOT NULL;
-- ListDrivers by name (keyset on lower(name), id) and `name = "prefix*"`.
CREATE INDEX drivers_by_name ON fleet.drivers (tenant_id, lower(name) text_pattern_ops, id);

CREATE TRIGGER drivers_touch BEFORE UPDATE ON fleet.drivers
    FOR EACH ROW EXECUTE FUNCTION fleet.touch_updated_at();

-- Maintenance records -------------------------------------------------------------------------

CREATE TABLE fleet.maintenance_records (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    truck_id           uuid        NOT NULL,
    kind               text        NOT NULL CHECK (kind IN ('inspection', 'service', 'repair', 'tyres')),
    scheduled_window   tstzrange   NOT NULL CHECK (fleet.is_window(scheduled_window)),
    performed_at       timestamptz,
    odometer_km        bigint      NOT NULL DEFAULT 0 CHECK (odometer_km >= 0),
    cost_minor         bigint      CHECK (cost_minor >= 0),
    cost_currency_code char(3)     CHECK (cost_currency_code ~ '^[A-Z]{3}$'),
    notes              text        NOT NULL DEFAULT '' CHECK (char_length(notes) <= 2000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at         timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, truck_id) REFERENCES fleet.trucks (tenant_id, id),
    CHECK ((cost_minor IS NULL) = (cost_currency_code IS NULL))
);
-- "Is this truck in the workshop during this window?" and ListMaintenanceRecords.
CREATE INDEX maintenance_by_truck_window ON fleet.maintenance_records
    USING gist (tenant_id, truck_id, scheduled_window) WHERE deleted_at IS NULL;
CREATE INDEX maintenance_by_truck ON fleet.maintenance_records (tenant_id, truck_id, lower(scheduled_window), id);

CREATE TRIGGER maintenance_records_touch BEFORE UPDATE ON fleet.maintenance_records
    FOR EACH ROW EXECUTE FUNCTION fleet.touch_updated_at();

-- Assignments ---------------------------------------------------------------------------------

CREATE TABLE fleet.assignments (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    truck_id      uuid        NOT NULL,
    driver_id     uuid        NOT NULL,
    shipment_id   uuid        NOT NULL,
    time_window   tstzrange   NOT NULL CHECK (fleet.is_window(time_window)),
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    cancelled_at  timestamptz,
    cancel_reason text        NOT NULL DEFAULT '' CHECK (char_length(cancel_reason) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, truck_id) REFERENCES fleet.trucks (tenant_id, id),
    FOREIGN KEY (tenant_id, driver_id) REFERENCES fleet.drivers (tenant_id, id),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    -- The heart of the service: one truck, or one driver, is never booked twice at once.
    CONSTRAINT assignments_truck_no_overlap EXCLUDE USING gist
        (tenant_id WITH =, truck_id WITH =, time_window WITH &&) WHERE (status = 'active'),
    CONSTRAINT assignments_driver_no_overlap EXCLUDE USING gist
        (tenant_id WITH =, driver_id WITH =, time_window WITH &&) WHERE (status = 'active')
);
-- ListAssignments by truck, driver or shipment, by window start (cancelled ones included).
CREATE INDEX assignments_by_truck ON fleet.assignments (tenant_id, truck_id, lower(time_window), id);
CREATE INDEX assignments_by_driver ON fleet.assignments (tenant_id, driver_id, lower(time_window), id);
CREATE INDEX assignments_by_shipment ON fleet.assignments (tenant_id, shipment_id, lower(time_window), id);

CREATE TRIGGER assignments_touch BEFORE UPDATE ON fleet.assignments
    FOR EACH ROW EXECUTE FUNCTION fleet.touch_updated_at();

-- An active assignment needs an active, live truck with no scheduled maintenance in its window,
-- and an active, live driver licensed to the window's end. The truck and driver rows are
-- locked (FOR SHARE) so a concurrent status change or maintenance booking waits for this
-- transaction and then sees the assignment. Errors name a constraint the service maps to a
-- PreconditionFailure.
CREATE FUNCTION fleet.check_assignment() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    truck  fleet.trucks%ROWTYPE;
    driver fleet.drivers%ROWTYPE;
BEGIN
    IF NEW.status <> 'active' THEN RETURN NEW; END IF;
    SELECT * INTO truck FROM fleet.trucks
     WHERE tenant_id = NEW.tenant_id AND id = NEW.truck_id FOR SHARE;
    IF NOT FOUND OR truck.deleted_at IS NOT NULL OR truck.status <> 'active' THEN
        RAISE EXCEPTION 'truck not assignable' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'assignments_truck_active';
    END IF;
    IF EXISTS (SELECT 1 FROM fleet.maintenance_records m
                WHERE m.tenant_id = NEW.tenant_id AND m.truck_id = NEW.truck_id
                  AND m.deleted_at IS NULL AND m.scheduled_window && NEW.time_window) THEN
        RAISE EXCEPTION 'truck in maintenance' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'assignments_truck_not_in_maintenance';
    END IF;
    SELECT * INTO driver FROM fleet.drivers
     WHERE tenant_id = NEW.tenant_id AND id = NEW.driver_id FOR SHARE;
    IF NOT FOUND OR driver.deleted_at IS NOT NULL OR driver.status <> 'active' THEN
        RAISE EXCEPTION 'driver not assignable' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'assignments_driver_active';
    END IF;
    IF driver.licence_expires_at < upper(NEW.time_window) THEN
        RAISE EXCEPTION 'licence expires' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'assignments_driver_licensed';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER assignments_check BEFORE INSERT OR UPDATE OF truck_id, driver_id, time_window, status
    ON fleet.assignments FOR EACH ROW EXECUTE FUNCTION fleet.check_assignment();

-- Maintenance cannot be scheduled over an active assignment of its truck; the truck row is
-- locked (FOR UPDATE) so this waits for, then sees, an assignment being booked.
CREATE FUNCTION fleet.check_maintenance() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN RETURN NEW; END IF;
    PERFORM 1 FROM fleet.trucks WHERE tenant_id = NEW.tenant_id AND id = NEW.truck_id FOR UPDATE;
    IF EXISTS (SELECT 1 FROM fleet.assignments a
                WHERE a.tenant_id = NEW.tenant_id AND a.truck_id = NEW.truck_id
                  AND a.status = 'active' AND a.time_window && NEW.scheduled_window) THEN
        RAISE EXCEPTION 'truck booked' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'maintenance_records_truck_free';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER maintenance_records_check
    BEFORE INSERT OR UPDATE OF truck_id, scheduled_window, deleted_at
    ON fleet.maintenance_records FOR EACH ROW EXECUTE FUNCTION fleet.check_maintenance();

-- Idempotency claims of Create calls (AIP-155) -------------------------------------------------

CREATE TABLE fleet.idempotency_keys (
    tenant_id    uuid        NOT NULL,
    method       text        NOT NULL,
    request_id   uuid        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, method, request_id)
);

-- Row-level security ----------------------------------------------------------------------------

ALTER TABLE fleet.trucks ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet.trucks FORCE ROW LEVEL SECURITY;
ALTER TABLE fleet.drivers ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet.drivers FORCE ROW LEVEL SECURITY;
ALTER TABLE fleet.maintenance_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet.maintenance_records FORCE ROW LEVEL SECURITY;
ALTER TABLE fleet.assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet.assignments FORCE ROW LEVEL SECURITY;
ALTER TABLE fleet.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet.idempotency_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON fleet.trucks
    USING (tenant_id = fleet.current_tenant_id()) WITH CHECK (tenant_id = fleet.current_tenant_id());
CREATE POLICY tenant_isolation ON fleet.drivers
    USING (tenant_id = fleet.current_tenant_id()) WITH CHECK (tenant_id = fleet.current_tenant_id());
CREATE POLICY tenant_isolation ON fleet.maintenance_records
    USING (tenant_id = fleet.current_tenant_id()) WITH CHECK (tenant_id = fleet.current_tenant_id());
CREATE POLICY tenant_isolation ON fleet.assignments
    USING (tenant_id = fleet.current_tenant_id()) WITH CHECK (tenant_id = fleet.current_tenant_id());
CREATE POLICY tenant_isolation ON fleet.idempotency_keys
    USING (tenant_id = fleet.current_tenant_id()) WITH CHECK (tenant_id = fleet.current_tenant_id());

-- A driver user sees only its own driver record and its own assignments. Restrictive: it
-- narrows tenant isolation, never widens it.
CREATE POLICY own_driver ON fleet.drivers AS RESTRICTIVE
    USING (fleet.current_driver_id() IS NULL OR id = fleet.current_driver_id());
CREATE POLICY own_assignments ON fleet.assignments AS RESTRICTIVE
    USING (fleet.current_driver_id() IS NULL OR driver_id = fleet.current_driver_id());
