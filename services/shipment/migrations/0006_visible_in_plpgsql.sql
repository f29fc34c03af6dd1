-- The restrictive `external_scope` policy of the shipment's child tables (items, stops, tracking
-- events, proofs, sagas) calls shipment_visible() on every row it reads or writes. As a SQL
-- function it could not be inlined (its EXISTS is a sub-select), so PostgreSQL ran it through
-- the SQL-function executor: parsed and planned afresh in every statement that touched one of
-- these tables, even for internal callers, whose answer is always true. Profiled under
-- PlanShipment, that executor (fmgr_sql) took 8.6 % of all PostgreSQL CPU.
--
-- As PL/pgSQL its plan is cached for the session, and callers with neither a partner nor a
-- driver in their context (staff and services) get true without looking at shipments at all.
-- The answer is the same as before for every caller; the shipment lookup still runs under the
-- caller's own row-level security (SECURITY INVOKER).
CREATE OR REPLACE FUNCTION shipment.shipment_visible(p_tenant_id uuid, p_shipment_id uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    IF shipment.current_partner_id() IS NULL AND shipment.current_driver_id() IS NULL THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM shipment.shipments s WHERE s.tenant_id = p_tenant_id AND s.id = p_shipment_id);
END
$$;
