-- A booking stays valid after it is made: a truck with an active assignment that has not ended
-- cannot be retired, sent to maintenance or deleted, and a driver with one cannot be made
-- inactive, deleted, or given a licence that ends before it does. Cancel (or re-plan) the
-- assignments first. The row being updated is locked by the UPDATE itself, and a booking locks
-- it FOR SHARE, so the two wait for each other and the later one sees the earlier.

CREATE FUNCTION fleet.check_truck_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF (NEW.status <> 'active' OR NEW.deleted_at IS NOT NULL)
       AND EXISTS (SELECT 1 FROM fleet.assignments a
                    WHERE a.tenant_id = NEW.tenant_id AND a.truck_id = NEW.id
                      AND a.status = 'active' AND upper(a.time_window) > now()) THEN
        RAISE EXCEPTION 'truck has assignments' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'trucks_keep_assignments';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER trucks_keep_assignments BEFORE UPDATE OF status, deleted_at ON fleet.trucks
    FOR EACH ROW EXECUTE FUNCTION fleet.check_truck_change();

CREATE FUNCTION fleet.check_driver_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF (NEW.status <> 'active' OR NEW.deleted_at IS NOT NULL)
       AND EXISTS (SELECT 1 FROM fleet.assignments a
                    WHERE a.tenant_id = NEW.tenant_id AND a.driver_id = NEW.id
                      AND a.status = 'active' AND upper(a.time_window) > now()) THEN
        RAISE EXCEPTION 'driver has assignments' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'drivers_keep_assignments';
    END IF;
    IF NEW.licence_expires_at < OLD.licence_expires_at
       AND EXISTS (SELECT 1 FROM fleet.assignments a
                    WHERE a.tenant_id = NEW.tenant_id AND a.driver_id = NEW.id
                      AND a.status = 'active' AND upper(a.time_window) > now()
                      AND upper(a.time_window) > NEW.licence_expires_at) THEN
        RAISE EXCEPTION 'licence ends before an assignment' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'drivers_licensed_for_assignments';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER drivers_keep_assignments
    BEFORE UPDATE OF status, deleted_at, licence_expires_at ON fleet.drivers
    FOR EACH ROW EXECUTE FUNCTION fleet.check_driver_change();

-- Nothing is hard-deleted by the service but idempotency claims (retention): history stays.
REVOKE DELETE ON fleet.trucks, fleet.drivers, fleet.maintenance_records, fleet.assignments
    FROM fleet_app;
