-- lock_levels() is SECURITY DEFINER, so PostgreSQL never inlines it: as a SQL function it went
-- through the SQL-function executor, which parses and plans its query again in every call
-- (twice per ReserveStock and per release). As PL/pgSQL the plan is prepared once per session.
-- Same rows, same order, same locks, same owner and privileges.
CREATE OR REPLACE FUNCTION inventory.lock_levels(p_warehouse_ids uuid[], p_material_ids uuid[])
    RETURNS SETOF inventory.stock_levels
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT l.* FROM inventory.stock_levels l
      JOIN unnest(p_warehouse_ids, p_material_ids) AS k(warehouse_id, material_id)
        ON l.warehouse_id = k.warehouse_id AND l.material_id = k.material_id
     WHERE l.tenant_id = inventory.current_tenant_id()
     ORDER BY l.warehouse_id, l.material_id
       FOR UPDATE OF l;
END
$$;
