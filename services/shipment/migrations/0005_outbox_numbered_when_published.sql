-- Outbox events are numbered when they are published, not when they are written.
--
-- append_event used to take the tenant's next number in the writing transaction, which locked
-- the tenant's counter row until that transaction ended, and sent a NOTIFY, which holds a
-- database-wide lock from the commit until it is done. So every change that emits an event
-- waited for the commit (WAL flush included) of the one before it: the benchmark measured 8 ms
-- mean inside append_event at 32 concurrent plans, nearly all of it waiting.
--
-- Now a writer only appends an unnumbered row (`id` from a sequence, in append order). A
-- publisher (every replica of the service runs one, see src/publisher.rs) numbers a tenant's
-- committed, unnumbered rows in `id` order in a transaction of its own that holds the tenant's
-- counter row, marks them published and sends one NOTIFY for the batch. The numbers are still
-- gap-free and commit in order, so a watcher that has seen n has seen everything before it;
-- what changes is that an event reaches watchers when it is published, shortly after its change
-- commits, and that `published_at` now says when.

ALTER TABLE shipment.outbox ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;

-- Every event written so far has its number and has been visible to watchers since it was
-- written. (The table forces row-level security on its owner too; no tenant is set here.)
ALTER TABLE shipment.outbox NO FORCE ROW LEVEL SECURITY;
UPDATE shipment.outbox SET published_at = created_at WHERE published_at IS NULL;
ALTER TABLE shipment.outbox FORCE ROW LEVEL SECURITY;

DROP INDEX shipment.outbox_unpublished;
ALTER TABLE shipment.outbox
    DROP CONSTRAINT outbox_pkey,
    ADD PRIMARY KEY (tenant_id, id),
    ALTER COLUMN sequence DROP NOT NULL,
    -- Watchers read `sequence > n` in order through this index.
    ADD CONSTRAINT outbox_sequence_unique UNIQUE (tenant_id, sequence),
    ADD CONSTRAINT outbox_published_numbered CHECK ((sequence IS NULL) = (published_at IS NULL));
-- What the publisher has left to number.
CREATE INDEX outbox_unpublished ON shipment.outbox (tenant_id, id) WHERE sequence IS NULL;

-- A tenant's counter starts at 0 before its first event is published.
ALTER TABLE shipment.outbox_sequences
    DROP CONSTRAINT outbox_sequences_last_sequence_check,
    ADD CONSTRAINT outbox_sequences_last_sequence_check CHECK (last_sequence >= 0);

-- Appends an unnumbered event for the current tenant (as the owner: the runtime role cannot
-- write the outbox directly; row-level security still applies). Returns the row's id.
CREATE OR REPLACE FUNCTION shipment.append_event(p_shipment_id uuid, p_event_type text, p_customer_id uuid,
                                                 p_supplier_id uuid, p_driver_id uuid, p_payload bytea)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant uuid := shipment.current_tenant_id();
    appended bigint;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant in context' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO shipment.outbox (tenant_id, shipment_id, event_type, customer_id, supplier_id, driver_id, payload)
    VALUES (tenant, p_shipment_id, p_event_type, p_customer_id, p_supplier_id, p_driver_id, p_payload)
    RETURNING id INTO appended;
    RETURN appended;
END $$;

-- Numbers up to p_limit committed, unnumbered events of the current tenant in append order,
-- marks them published and wakes the watchers (NOTIFY, delivered at commit). Returns how many
-- it numbered: 0 as well when another publisher holds the tenant's counter, because that one
-- is numbering them now (what it could not see yet, the next round numbers).
CREATE FUNCTION shipment.publish_events(p_limit integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant uuid := shipment.current_tenant_id();
    last bigint;
    numbered integer;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant in context' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO shipment.outbox_sequences (tenant_id, last_sequence) VALUES (tenant, 0)
    ON CONFLICT (tenant_id) DO NOTHING;
    SELECT last_sequence INTO last FROM shipment.outbox_sequences
     WHERE tenant_id = tenant FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH next AS (
        SELECT id, row_number() OVER (ORDER BY id) AS n FROM shipment.outbox
         WHERE tenant_id = tenant AND sequence IS NULL ORDER BY id LIMIT p_limit
    )
    UPDATE shipment.outbox o SET sequence = last + next.n, published_at = now()
      FROM next WHERE o.tenant_id = tenant AND o.id = next.id;
    GET DIAGNOSTICS numbered = ROW_COUNT;
    IF numbered > 0 THEN
        UPDATE shipment.outbox_sequences SET last_sequence = last + numbered WHERE tenant_id = tenant;
        PERFORM pg_notify('shipment_events', tenant::text);
    END IF;
    RETURN numbered;
END $$;
REVOKE ALL ON FUNCTION shipment.publish_events(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shipment.publish_events(integer) TO shipment_app;

-- Only publish_events() marks events published.
REVOKE UPDATE (published_at) ON shipment.outbox FROM shipment_app;

-- The publisher finds the tenants with events to number from the service's own 'system'
-- context, which no access token can carry (it then numbers inside each tenant). Queries that
-- read a tenant's outbox name the tenant, so this OR does not cost them the tenant's index.
CREATE POLICY publisher_read ON shipment.outbox FOR SELECT
    USING (shipment.has_app_role('system') AND sequence IS NULL);
