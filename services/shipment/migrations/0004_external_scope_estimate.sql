-- The restrictive external_scope policy of shipments, written inline as an OR over the request
-- context, made the planner estimate that almost none of a tenant's shipments are visible: it
-- cannot know that current_partner_id() and current_driver_id() are NULL for internal users, so
-- it multiplied two small OR selectivities. With 100,000 shipments ListShipments then chose a
-- parallel sequential scan and a sort (300 ms a page) over the index that gives its order
-- (2 ms). A PL/pgSQL function is never inlined: the planner uses its default selectivity and
-- keeps the index order. The rule is the same as before; the child tables' policies
-- (shipment_visible) were not misjudged and stay as they are.
CREATE FUNCTION shipment.in_external_scope(p_customer_id uuid, p_supplier_id uuid, p_driver_id uuid)
    RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$ BEGIN
        RETURN (shipment.current_partner_id() IS NULL
                OR p_customer_id = shipment.current_partner_id()
                OR p_supplier_id = shipment.current_partner_id())
           AND (shipment.current_driver_id() IS NULL OR p_driver_id = shipment.current_driver_id());
    END $$;

ALTER POLICY external_scope ON shipment.shipments
    USING (shipment.in_external_scope(customer_id, supplier_id, driver_id));
