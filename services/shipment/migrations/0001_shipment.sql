-- Shipment: shipments with their items (m:n shipment × material) and stops, tracking events
-- (append-only, partitioned by month), proof of delivery, the outbox of shipment events, and the
-- persisted sagas that plan, dispatch and cancel shipments across inventory and fleet.
--
-- Runs as shipment_owner; the service runs as shipment_app (no ownership, no BYPASSRLS).
-- Every table forces row-level security with tenant isolation; customer and supplier users
-- (app.partner_id) see only their partner's shipments, driver users (app.driver_id) only the
-- shipments booked for them, and everything hanging off a shipment follows its shipment.
--
-- What the database holds whatever the service does:
-- - a shipment changes status only along the machine (trigger), and the fields each status
--   needs are set (CHECKs);
-- - items and stops change only while their shipment is a DRAFT that is not being planned;
-- - a shipment's total weight and volume are the sums of its live items, kept by trigger in
--   the same transaction as the items;
-- - one unfinished saga per shipment; one tracking event per client event id;
-- - outbox sequence numbers are gap-free and commit in order per tenant.

CREATE FUNCTION shipment.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Set for customer and supplier users; NULL for internal users.
CREATE FUNCTION shipment.current_partner_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.partner_id', true), '')::uuid $$;

-- Set for driver users; NULL for everyone else.
CREATE FUNCTION shipment.current_driver_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.driver_id', true), '')::uuid $$;

CREATE FUNCTION shipment.has_app_role(role text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT role = ANY (string_to_array(NULLIF(current_setting('app.roles', true), ''), ',')) $$;

CREATE FUNCTION shipment.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        IF NEW.version IS DISTINCT FROM OLD.version THEN NEW.updated_at := now(); END IF;
        RETURN NEW;
    END $$;

-- Shipments ----------------------------------------------------------------------------------

CREATE TABLE shipment.shipments (
    tenant_id          uuid          NOT NULL,
    id                 uuid          NOT NULL,
    reference          text          NOT NULL CHECK (reference ~ '^[A-Z0-9][A-Z0-9_/-]{0,39}$'),
    -- Partner ids of the partner service (no foreign key across schemas).
    customer_id        uuid          NOT NULL,
    supplier_id        uuid,
    -- A warehouse id of the inventory service.
    origin_warehouse_id uuid         NOT NULL,
    -- The partner address the destination was copied from, and the copy.
    destination_address_id uuid      NOT NULL,
    dest_line1         text          NOT NULL CHECK (char_length(dest_line1) BETWEEN 1 AND 200),
    dest_line2         text          NOT NULL DEFAULT '' CHECK (char_length(dest_line2) <= 200),
    dest_city          text          NOT NULL CHECK (char_length(dest_city) BETWEEN 1 AND 100),
    dest_region        text          NOT NULL DEFAULT '' CHECK (char_length(dest_region) <= 100),
    dest_postal_code   text          NOT NULL DEFAULT '' CHECK (char_length(dest_postal_code) <= 20),
    dest_country_code  char(2)       NOT NULL CHECK (dest_country_code ~ '^[A-Z]{2}$'),
    dest_latitude      double precision CHECK (dest_latitude BETWEEN -90 AND 90),
    dest_longitude     double precision CHECK (dest_longitude BETWEEN -180 AND 180),
    pickup_window      tstzrange     NOT NULL CHECK (NOT isempty(pickup_window) AND lower_inc(pickup_window)
                                                     AND NOT upper_inc(pickup_window)
                                                     AND NOT lower_inf(pickup_window) AND NOT upper_inf(pickup_window)),
    delivery_window    tstzrange     NOT NULL CHECK (NOT isempty(delivery_window) AND lower_inc(delivery_window)
                                                     AND NOT upper_inc(delivery_window)
                                                     AND NOT lower_inf(delivery_window) AND NOT upper_inf(delivery_window)),
    priority           text          NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status             text          NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'planned', 'dispatched',
                                                     'in_transit', 'delivered', 'cancelled', 'exception')),
    status_reason      text          NOT NULL DEFAULT '' CHECK (char_length(status_reason) <= 500),
    -- Fleet ids, set by planning.
    truck_id           uuid,
    driver_id          uuid,
    assignment_id      uuid,
    -- Exact sums: quantity numeric(18,3) times unit weight numeric(14,4) has 7 decimals and
    -- at most 25 integer digits, so no valid item set rounds or overflows.
    total_weight_kg    numeric(36,7) NOT NULL DEFAULT 0 CHECK (total_weight_kg >= 0),
    total_volume_m3    numeric(38,9) NOT NULL DEFAULT 0 CHECK (total_volume_m3 >= 0),
    notes              text          NOT NULL DEFAULT '' CHECK (char_length(notes) <= 2000),
    -- The saga running on this shipment (plan, dispatch or cancel), if any.
    saga_id            uuid,
    planned_at         timestamptz,
    dispatched_at      timestamptz,
    delivered_at       timestamptz,
    cancelled_at       timestamptz,
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now(),
    version            integer       NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at         timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK ((dest_latitude IS NULL) = (dest_longitude IS NULL)),
    CONSTRAINT shipments_delivery_after_pickup CHECK (lower(delivery_window) >= lower(pickup_window)),
    -- What each status needs.
    CONSTRAINT shipments_draft_is_unbooked CHECK (status <> 'draft'
        OR (truck_id IS NULL AND driver_id IS NULL AND assignment_id IS NULL AND planned_at IS NULL)),
    CONSTRAINT shipments_planned_is_booked CHECK (status IN ('draft', 'cancelled')
        OR (truck_id IS NOT NULL AND driver_id IS NOT NULL AND assignment_id IS NOT NULL AND planned_at IS NOT NULL)),
    CONSTRAINT shipments_dispatched_time CHECK ((status IN ('dispatched', 'in_transit', 'exception', 'delivered'))
        <= (dispatched_at IS NOT NULL)),
    CONSTRAINT shipments_delivered_time CHECK ((status = 'delivered') = (delivered_at IS NOT NULL)),
    CONSTRAINT shipments_cancelled_time CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    -- Only a draft may be deleted, and a deleted one stays a draft.
    CONSTRAINT shipments_only_drafts_deleted CHECK (deleted_at IS NULL OR status = 'draft')
);
-- Reference unique per tenant among live shipments.
CREATE UNIQUE INDEX shipments_reference_key ON shipment.shipments (tenant_id, reference) WHERE deleted_at IS NULL;
-- ListShipments: newest first (default), by reference, by customer (customer users), by driver
-- (driver users), by status.
CREATE INDEX shipments_by_time ON shipment.shipments (tenant_id, created_at DESC, id DESC);
CREATE INDEX shipments_by_reference ON shipment.shipments (tenant_id, reference, id);
CREATE INDEX shipments_by_customer ON shipment.shipments (tenant_id, customer_id, created_at DESC, id DESC);
CREATE INDEX shipments_by_supplier ON shipment.shipments (tenant_id, supplier_id, created_at DESC, id DESC)
    WHERE supplier_id IS NOT NULL;
CREATE INDEX shipments_by_driver ON shipment.shipments (tenant_id, driver_id, created_at DESC, id DESC)
    WHERE driver_id IS NOT NULL;
CREATE INDEX shipments_by_status ON shipment.shipments (tenant_id, status, created_at DESC, id DESC);

CREATE TRIGGER shipments_touch BEFORE UPDATE ON shipment.shipments
    FOR EACH ROW EXECUTE FUNCTION shipment.touch_updated_at();

-- The status machine, as the database enforces it (the service's domain/status.rs is the same
-- table; a change to one without the other fails the tests).
CREATE FUNCTION shipment.check_status_transition() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        IF NEW.status IS DISTINCT FROM OLD.status AND (OLD.status, NEW.status) NOT IN (
            ('draft', 'planned'), ('planned', 'dispatched'), ('dispatched', 'in_transit'),
            ('in_transit', 'delivered'), ('draft', 'cancelled'), ('planned', 'cancelled'),
            ('exception', 'cancelled'), ('dispatched', 'exception'), ('in_transit', 'exception'),
            ('exception', 'in_transit'))
        THEN
            RAISE EXCEPTION 'a shipment cannot go from % to %', OLD.status, NEW.status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'shipments_status_transition';
        END IF;
        RETURN NEW;
    END $$;
CREATE TRIGGER shipments_status_transition BEFORE UPDATE OF status ON shipment.shipments
    FOR EACH ROW EXECUTE FUNCTION shipment.check_status_transition();

-- Items -------------------------------------------------------------------------------------

CREATE TABLE shipment.shipment_items (
    tenant_id      uuid          NOT NULL,
    id             uuid          NOT NULL,
    shipment_id    uuid          NOT NULL,
    -- A material id of the inventory service.
    material_id    uuid          NOT NULL,
    quantity       numeric(18,3) NOT NULL CHECK (quantity > 0),
    -- The material's unit weight and volume when the item was added.
    unit_weight_kg numeric(14,4) NOT NULL CHECK (unit_weight_kg >= 0),
    unit_volume_m3 numeric(14,6) NOT NULL CHECK (unit_volume_m3 >= 0),
    created_at     timestamptz   NOT NULL DEFAULT now(),
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    version        integer       NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, shipment_id) REFERENCES shipment.shipments (tenant_id, id)
);
-- One live item per material and shipment; ListShipmentItems by shipment.
CREATE UNIQUE INDEX shipment_items_material_key ON shipment.shipment_items (tenant_id, shipment_id, material_id)
    WHERE deleted_at IS NULL;
CREATE INDEX shipment_items_by_shipment ON shipment.shipment_items (tenant_id, shipment_id, created_at, id);

CREATE TRIGGER shipment_items_touch BEFORE UPDATE ON shipment.shipment_items
    FOR EACH ROW EXECUTE FUNCTION shipment.touch_updated_at();

-- Stops -------------------------------------------------------------------------------------

CREATE TABLE shipment.stops (
    tenant_id    uuid             NOT NULL,
    id           uuid             NOT NULL,
    shipment_id  uuid             NOT NULL,
    sequence     integer          NOT NULL CHECK (sequence BETWEEN 1 AND 1000),
    kind         text             NOT NULL CHECK (kind IN ('pickup', 'drop_off')),
    line1        text             NOT NULL CHECK (char_length(line1) BETWEEN 1 AND 200),
    line2        text             NOT NULL DEFAULT '' CHECK (char_length(line2) <= 200),
    city         text             NOT NULL CHECK (char_length(city) BETWEEN 1 AND 100),
    region       text             NOT NULL DEFAULT '' CHECK (char_length(region) <= 100),
    postal_code  text             NOT NULL DEFAULT '' CHECK (char_length(postal_code) <= 20),
    country_code char(2)          NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    latitude     double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude    double precision CHECK (longitude BETWEEN -180 AND 180),
    time_window  tstzrange        NOT NULL CHECK (NOT isempty(time_window) AND lower_inc(time_window)
                                                  AND NOT upper_inc(time_window)
                                                  AND NOT lower_inf(time_window) AND NOT upper_inf(time_window)),
    arrived_at   timestamptz,
    departed_at  timestamptz,
    created_at   timestamptz      NOT NULL DEFAULT now(),
    updated_at   timestamptz      NOT NULL DEFAULT now(),
    version      integer          NOT NULL DEFAULT 1 CHECK (version > 0),
    deleted_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, shipment_id) REFERENCES shipment.shipments (tenant_id, id),
    CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT stops_depart_after_arrival CHECK (departed_at IS NULL OR arrived_at IS NULL OR departed_at >= arrived_at)
);
-- Sequence unique among a shipment's live stops; ListStops by sequence.
CREATE UNIQUE INDEX stops_sequence_key ON shipment.stops (tenant_id, shipment_id, sequence) WHERE deleted_at IS NULL;
CREATE INDEX stops_by_shipment ON shipment.stops (tenant_id, shipment_id, sequence, id);

CREATE TRIGGER stops_touch BEFORE UPDATE ON shipment.stops
    FOR EACH ROW EXECUTE FUNCTION shipment.touch_updated_at();

-- Items and stops change only while their shipment is a DRAFT no saga is working on (a stop's
-- arrival and departure times are the road's, and are not covered).
CREATE FUNCTION shipment.check_shipment_is_draft() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    s record;
BEGIN
    SELECT status, saga_id, deleted_at INTO s FROM shipment.shipments
     WHERE tenant_id = NEW.tenant_id AND id = NEW.shipment_id;
    IF s.status IS DISTINCT FROM 'draft' OR s.saga_id IS NOT NULL OR s.deleted_at IS NOT NULL THEN
        RAISE EXCEPTION 'the shipment is not an editable draft'
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_ARGV[0];
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER shipment_items_draft_only
    BEFORE INSERT OR UPDATE OF material_id, quantity, unit_weight_kg, unit_volume_m3, deleted_at, shipment_id
    ON shipment.shipment_items
    FOR EACH ROW EXECUTE FUNCTION shipment.check_shipment_is_draft('shipment_items_draft_only');
CREATE TRIGGER stops_draft_only
    BEFORE INSERT OR UPDATE OF sequence, kind, line1, line2, city, region, postal_code, country_code,
        latitude, longitude, time_window, deleted_at, shipment_id
    ON shipment.stops
    FOR EACH ROW EXECUTE FUNCTION shipment.check_shipment_is_draft('stops_draft_only');

-- The shipment's totals are the sums of its live items, in the items' transaction.
CREATE FUNCTION shipment.recompute_totals() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        UPDATE shipment.shipments s
           SET total_weight_kg = t.weight, total_volume_m3 = t.volume, version = s.version + 1
          FROM (SELECT coalesce(sum(i.quantity * i.unit_weight_kg), 0) AS weight,
                       coalesce(sum(i.quantity * i.unit_volume_m3), 0) AS volume
                  FROM shipment.shipment_items i
                 WHERE i.tenant_id = NEW.tenant_id AND i.shipment_id = NEW.shipment_id
                   AND i.deleted_at IS NULL) t
         WHERE s.tenant_id = NEW.tenant_id AND s.id = NEW.shipment_id;
        RETURN NULL;
    END $$;
CREATE TRIGGER shipment_items_totals AFTER INSERT OR UPDATE ON shipment.shipment_items
    FOR EACH ROW EXECUTE FUNCTION shipment.recompute_totals();

-- Tracking events -----------------------------------------------------------------------------

CREATE TABLE shipment.tracking_events (
    tenant_id       uuid             NOT NULL,
    id              uuid             NOT NULL,
    shipment_id     uuid             NOT NULL,
    client_event_id uuid             NOT NULL,
    kind            text             NOT NULL CHECK (kind IN ('position', 'arrived', 'departed', 'delayed',
                                                              'resumed', 'note')),
    event_time      timestamptz      NOT NULL,
    latitude        double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision CHECK (longitude BETWEEN -180 AND 180),
    stop_id         uuid,
    note            text             NOT NULL DEFAULT '' CHECK (char_length(note) <= 1000),
    recorded_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, recorded_at, id),
    CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CHECK (kind NOT IN ('arrived') OR stop_id IS NOT NULL)
) PARTITION BY RANGE (recorded_at);
-- ListTrackingEvents: a shipment's events in order.
CREATE INDEX tracking_events_by_shipment ON shipment.tracking_events (tenant_id, shipment_id, recorded_at, id);

-- One event per client event id, for ever (the partitioned table cannot hold a unique key
-- without its partition key): the claim and the event are written in one transaction.
CREATE TABLE shipment.tracking_event_ids (
    tenant_id       uuid        NOT NULL,
    client_event_id uuid        NOT NULL,
    shipment_id     uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, client_event_id),
    FOREIGN KEY (tenant_id, shipment_id) REFERENCES shipment.shipments (tenant_id, id)
);

-- Monthly partitions from this month to `months_ahead` months ahead, created as the owner
-- (SECURITY DEFINER) so the service can call it at start and daily without owning anything.
CREATE FUNCTION shipment.ensure_tracking_partitions(months_ahead integer) RETURNS integer
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
        name := format('tracking_events_%s', to_char(month, 'YYYY_MM'));
        IF to_regclass(format('shipment.%I', name)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE shipment.%I PARTITION OF shipment.tracking_events
                     FOR VALUES FROM (%L) TO (%L)',
                name, month::text || ' 00:00:00+00', (month + interval '1 month')::date::text || ' 00:00:00+00');
            EXECUTE format('REVOKE ALL ON shipment.%I FROM PUBLIC, shipment_app', name);
            created := created + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;
REVOKE ALL ON FUNCTION shipment.ensure_tracking_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shipment.ensure_tracking_partitions(integer) TO shipment_app;
SELECT shipment.ensure_tracking_partitions(3);

-- Proof of delivery -------------------------------------------------------------------------

CREATE TABLE shipment.proofs_of_delivery (
    tenant_id       uuid             NOT NULL,
    shipment_id     uuid             NOT NULL,
    -- Sealed (AEAD, key id inside, bound to tenant, table, column and shipment).
    recipient_name  bytea            NOT NULL,
    delivered_at    timestamptz      NOT NULL,
    latitude        double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision CHECK (longitude BETWEEN -180 AND 180),
    -- Sealed; the plaintext is 1 byte to 1 MiB (the seal adds well under 1 KiB).
    content         bytea            NOT NULL CHECK (octet_length(content) BETWEEN 1 AND 1049600),
    content_type    text             NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/svg+xml')),
    content_sha256  bytea            NOT NULL CHECK (octet_length(content_sha256) = 32),
    created_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, shipment_id),
    FOREIGN KEY (tenant_id, shipment_id) REFERENCES shipment.shipments (tenant_id, id),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);

-- The outbox ----------------------------------------------------------------------------------

-- The last sequence number of each tenant's outbox. Taking the next number locks the tenant's
-- row until commit, so numbers commit in order and without gaps: a reader that has seen
-- number n has seen everything before it.
CREATE TABLE shipment.outbox_sequences (
    tenant_id     uuid   NOT NULL PRIMARY KEY,
    last_sequence bigint NOT NULL CHECK (last_sequence > 0)
);

CREATE TABLE shipment.outbox (
    tenant_id    uuid        NOT NULL,
    sequence     bigint      NOT NULL CHECK (sequence > 0),
    shipment_id  uuid        NOT NULL,
    event_type   text        NOT NULL CHECK (event_type IN ('created', 'updated', 'planned', 'dispatched', 'tracked',
                                                            'exception_reported', 'delivered', 'cancelled', 'plan_failed')),
    -- Who may see it, copied from the shipment at the time (row-level security).
    customer_id  uuid        NOT NULL,
    supplier_id  uuid,
    driver_id    uuid,
    -- The encoded logistics.shipment.v1.ShipmentEvent (without sequence and resume token).
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (tenant_id, sequence),
    FOREIGN KEY (tenant_id, shipment_id) REFERENCES shipment.shipments (tenant_id, id)
);
CREATE INDEX outbox_by_shipment ON shipment.outbox (tenant_id, shipment_id, sequence);
CREATE INDEX outbox_unpublished ON shipment.outbox (tenant_id, sequence) WHERE published_at IS NULL;

-- Appends an event for the current tenant (as the owner: the runtime role cannot write the
-- outbox or its numbers directly; row-level security still applies, tables force it) with the next sequence number and wakes the
-- watchers (NOTIFY is delivered at commit). Returns the sequence number.
CREATE FUNCTION shipment.append_event(p_shipment_id uuid, p_event_type text, p_customer_id uuid,
                                      p_supplier_id uuid, p_driver_id uuid, p_payload bytea)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant uuid := shipment.current_tenant_id();
    seq bigint;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant in context' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO shipment.outbox_sequences AS o (tenant_id, last_sequence) VALUES (tenant, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET last_sequence = o.last_sequence + 1
    RETURNING last_sequence INTO seq;
    INSERT INTO shipment.outbox (tenant_id, sequence, shipment_id, event_type, customer_id,
                                 supplier_id, driver_id, payload)
    VALUES (tenant, seq, p_shipment_id, p_event_type, p_customer_id, p_supplier_id, p_driver_id, p_payload);
    PERFORM pg_notify('shipment_events', tenant::text);
    RETURN seq;
END $$;
REVOKE ALL ON FUNCTION shipment.append_event(uuid, text, uuid, uuid, uuid, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shipment.append_event(uuid, text, uuid, uuid, uuid, bytea) TO shipment_app;

-- Sagas -------------------------------------------------------------------------------------

-- A plan, dispatch or cancel in progress or finished. Each step is written before the call it
-- makes, so a service that dies mid-saga is found (lease expired) and driven on by a replica or
-- its next start. Idempotency keys of the outgoing calls derive from `id` and the step.
CREATE TABLE shipment.sagas (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL,
    shipment_id    uuid        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('plan', 'dispatch', 'cancel')),
    state          text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'compensating', 'done', 'failed')),
    step           text        NOT NULL CHECK (step IN ('reserve', 'assign', 'consume', 'release', 'unassign', 'commit', 'end')),
    -- The user who started it and the client's request id (PlanShipment replays).
    started_by     uuid        NOT NULL,
    request_id     uuid,
    -- For cancel: why.
    reason         text        NOT NULL DEFAULT '' CHECK (char_length(reason) <= 500),
    -- The booking chosen (written before it is made) and made.
    truck_id       uuid,
    driver_id      uuid,
    assignment_id  uuid,
    assign_attempt integer     NOT NULL DEFAULT 0 CHECK (assign_attempt >= 0),
    -- Why it failed: a gRPC code, its message and encoded details, as answered to the caller.
    error_code     integer,
    error_message  text        NOT NULL DEFAULT '',
    error_details  bytea,
    -- The starter's access token, sealed, so a recovered saga calls the other services as them;
    -- erased when the saga ends.
    credentials    bytea,
    lease_owner    uuid,
    lease_until    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, shipment_id) REFERENCES shipment.shipments (tenant_id, id),
    CONSTRAINT sagas_finished CHECK ((state IN ('done', 'failed')) = (finished_at IS NOT NULL)),
    CONSTRAINT sagas_finished_forget_credentials CHECK (finished_at IS NULL OR credentials IS NULL),
    CONSTRAINT sagas_failed_say_why CHECK ((state = 'failed') <= (error_code IS NOT NULL))
);
-- One unfinished saga per shipment.
CREATE UNIQUE INDEX sagas_one_running ON shipment.sagas (tenant_id, shipment_id)
    WHERE state IN ('running', 'compensating');
-- Recovery: unfinished sagas whose lease ran out, across tenants.
CREATE INDEX sagas_to_recover ON shipment.sagas (lease_until) WHERE state IN ('running', 'compensating');
-- A shipment's sagas (PlanShipment replays by request id).
CREATE INDEX sagas_by_shipment ON shipment.sagas (tenant_id, shipment_id, created_at);

-- Autovacuum for the hot rows ------------------------------------------------------------------
-- outbox_sequences: one row per tenant, updated by every change of every shipment of the tenant:
-- the most updated row of the schema. Vacuum it after a handful of dead versions, and leave half
-- of each page free so every update is a HOT update.
ALTER TABLE shipment.outbox_sequences SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000
);
-- outbox: append-mostly (rows are only ever marked published, later purged); analyze often so
-- the planner knows how far the watchers' "sequence > n" ranges reach.
ALTER TABLE shipment.outbox SET (autovacuum_analyze_scale_factor = 0.02);
-- sagas and shipments: each saga row is updated at every step, each shipment at every status
-- change; vacuum after 2 % and keep room on the page for HOT updates.
ALTER TABLE shipment.sagas SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE shipment.shipments SET (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.05
);

-- Idempotency claims of Create calls ------------------------------------------------------------

CREATE TABLE shipment.idempotency_keys (
    tenant_id    uuid        NOT NULL,
    method       text        NOT NULL,
    request_id   uuid        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, method, request_id)
);

-- Row-level security ----------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['shipments', 'shipment_items', 'stops', 'tracking_events', 'tracking_event_ids',
                             'proofs_of_delivery', 'outbox_sequences', 'outbox', 'sagas', 'idempotency_keys']
    LOOP
        EXECUTE format('ALTER TABLE shipment.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE shipment.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON shipment.%I
                            USING (tenant_id = shipment.current_tenant_id())
                            WITH CHECK (tenant_id = shipment.current_tenant_id())', t);
    END LOOP;
END $$;

-- External users (restrictive: narrows tenant isolation): a customer or supplier user sees its
-- partner's shipments, a driver user the shipments booked for it.
CREATE POLICY external_scope ON shipment.shipments AS RESTRICTIVE
    USING ((shipment.current_partner_id() IS NULL
            OR customer_id = shipment.current_partner_id() OR supplier_id = shipment.current_partner_id())
       AND (shipment.current_driver_id() IS NULL OR driver_id = shipment.current_driver_id()));

-- Whether the caller may see the shipment: always for internal users, else as its policy says
-- (the query runs as the caller, so the shipments policies decide).
CREATE FUNCTION shipment.shipment_visible(p_tenant_id uuid, p_shipment_id uuid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
    SELECT (shipment.current_partner_id() IS NULL AND shipment.current_driver_id() IS NULL)
        OR EXISTS (SELECT 1 FROM shipment.shipments s WHERE s.tenant_id = p_tenant_id AND s.id = p_shipment_id)
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['shipment_items', 'stops', 'tracking_events', 'tracking_event_ids',
                             'proofs_of_delivery', 'sagas']
    LOOP
        EXECUTE format('CREATE POLICY external_scope ON shipment.%I AS RESTRICTIVE
                            USING (shipment.shipment_visible(tenant_id, shipment_id))', t);
    END LOOP;
END $$;

CREATE POLICY external_scope ON shipment.outbox AS RESTRICTIVE
    USING ((shipment.current_partner_id() IS NULL
            OR customer_id = shipment.current_partner_id() OR supplier_id = shipment.current_partner_id())
       AND (shipment.current_driver_id() IS NULL OR driver_id = shipment.current_driver_id()));

-- Saga recovery runs in the service's 'system' context, which no access token can carry: it
-- finds unfinished sagas of every tenant and claims their lease (then works inside the tenant).
CREATE POLICY recovery_read ON shipment.sagas FOR SELECT USING (shipment.has_app_role('system'));
CREATE POLICY recovery_claim ON shipment.sagas FOR UPDATE
    USING (shipment.has_app_role('system')) WITH CHECK (shipment.has_app_role('system'));

-- Nothing is hard-deleted by the runtime role but idempotency claims (retention).
REVOKE DELETE ON shipment.shipments, shipment.shipment_items, shipment.stops, shipment.tracking_events,
    shipment.tracking_event_ids, shipment.proofs_of_delivery, shipment.outbox_sequences, shipment.sagas
    FROM shipment_app;
-- The ledger of the road is append-only.
REVOKE UPDATE ON shipment.tracking_events, shipment.tracking_event_ids, shipment.proofs_of_delivery FROM shipment_app;
-- Outbox numbers come only from append_event(); rows are only marked published.
REVOKE INSERT, UPDATE ON shipment.outbox FROM shipment_app;
REVOKE ALL ON shipment.outbox_sequences FROM shipment_app;
GRANT UPDATE (published_at) ON shipment.outbox TO shipment_app;
