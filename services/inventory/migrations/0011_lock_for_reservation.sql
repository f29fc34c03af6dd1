-- ReserveStock began with three statements, each a round trip on its pooled connection: lock
-- the live warehouses and materials (lock_live), lock the lines' levels (lock_levels), then
-- read the shipment's reservations under those locks. One call of this function does the
-- three, in that order, so a ReserveStock is two round trips shorter.
--
-- Each RETURN QUERY is its own statement with its own snapshot (the function is VOLATILE), as
-- the three statements were: the reservations are read after the level locks are granted, so
-- a concurrent ReserveStock of the same lines that held them has committed and its
-- reservation is seen. The rows come back tagged by `part`:
--   'warehouse' / 'material': a live one, locked FOR SHARE (id in `id`);
--   'level': a level of the lines, locked FOR UPDATE, with its material's reorder point;
--   'reservation': one of the shipment's reservations, by warehouse and material.
-- SECURITY INVOKER: lock_live runs with the caller's rights and policies as before, and
-- lock_levels is SECURITY DEFINER on its own. From a plan kept for the session (migration
-- 0008: array parameters made PostgreSQL plan each call afresh).
CREATE FUNCTION inventory.lock_for_reservation(
    p_warehouse_ids uuid[], p_material_ids uuid[], p_shipment_id uuid
) RETURNS TABLE (
    part text, id uuid, warehouse_id uuid, material_id uuid, on_hand numeric, reserved numeric,
    reorder_point numeric, quantity numeric, status text, created_at timestamptz,
    updated_at timestamptz
)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
        SET plan_cache_mode = force_generic_plan
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT CASE WHEN l.is_warehouse THEN 'warehouse' ELSE 'material' END, l.locked_id,
           NULL::uuid, NULL::uuid, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
           NULL::text, NULL::timestamptz, NULL::timestamptz
      FROM inventory.lock_live(p_warehouse_ids, p_material_ids) l;
    RETURN QUERY
    SELECT 'level', NULL::uuid, v.warehouse_id, v.material_id, v.on_hand::numeric,
           v.reserved::numeric, m.reorder_point::numeric, NULL::numeric, NULL::text,
           NULL::timestamptz, v.updated_at
      FROM inventory.lock_levels(p_warehouse_ids, p_material_ids) v
      JOIN inventory.materials m ON m.tenant_id = v.tenant_id AND m.id = v.material_id;
    RETURN QUERY
    SELECT 'reservation', r.id, r.warehouse_id, r.material_id, NULL::numeric, NULL::numeric,
           NULL::numeric, r.quantity::numeric, r.status, r.created_at, r.updated_at
      FROM inventory.reservations r
     WHERE r.shipment_id = p_shipment_id
     ORDER BY r.warehouse_id, r.material_id;
END
$$;
REVOKE ALL ON FUNCTION inventory.lock_for_reservation(uuid[], uuid[], uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.lock_for_reservation(uuid[], uuid[], uuid) TO inventory_app;
