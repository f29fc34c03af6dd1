-- AssignAvailable takes the first free truck in (payload, volume, id) order and the first free
-- driver in (name, id) order, FOR UPDATE SKIP LOCKED, LIMIT 1 (FindAvailableTrucks and
-- FindAvailableDrivers list in the same orders). No index gave either order whole, so every
-- pick read and filtered all of the tenant's active trucks or drivers and sorted them: about
-- 1 ms a pick with 200 trucks and 300 drivers (EXPLAIN ANALYZE), most of it the per-row policy
-- checks and the sort, and the longest two statements of a PlanShipment.
--
-- With indexes in those orders a pick walks the index from the start and stops at the first
-- row that is free and not locked: 0.1 ms.
DROP INDEX fleet.trucks_assignable;
CREATE INDEX trucks_assignable ON fleet.trucks (tenant_id, payload_capacity_kg, volume_capacity_m3, id)
    WHERE deleted_at IS NULL AND status = 'active';
CREATE INDEX drivers_assignable ON fleet.drivers (tenant_id, lower(name), id)
    WHERE deleted_at IS NULL AND status = 'active';

-- The drivers' index was still passed over: written inline, the restrictive own_driver policy
-- (an OR over the request context) made the planner expect about one visible driver in 600,
-- so sorting "one" row looked free. A PL/pgSQL function is never inlined and gets the default
-- selectivity, as shipments' external_scope does (shipment migration 0004). Same rule.
CREATE FUNCTION fleet.is_own_driver(p_driver_id uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$ BEGIN
        RETURN fleet.current_driver_id() IS NULL OR p_driver_id = fleet.current_driver_id();
    END $$;
ALTER POLICY own_driver ON fleet.drivers USING (fleet.is_own_driver(id));
