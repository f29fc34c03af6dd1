-- Several ledger entries of one operation in one statement (one round trip): a reservation of
-- many lines, its release or consumption. Each entry is applied by inventory.move_stock(), in
-- array order, so the books keep their one writer and every CHECK judges each entry as before;
-- the entries' ledger rows come back in the order applied. The entries share the operation's
-- reason, reference and idempotency key. Arrays of different lengths are refused before
-- anything is applied.
CREATE FUNCTION inventory.move_stock_many(
    p_ids uuid[], p_warehouse_ids uuid[], p_material_ids uuid[], p_kinds text[],
    p_on_hand_changes numeric[], p_reserved_changes numeric[], p_reason text,
    p_reference_type text, p_reference_id uuid, p_idempotency_key uuid
) RETURNS SETOF inventory.stock_movements
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    entries integer := cardinality(p_ids);
    e record;
BEGIN
    IF entries IS NULL
       OR cardinality(p_warehouse_ids) IS DISTINCT FROM entries
       OR cardinality(p_material_ids) IS DISTINCT FROM entries
       OR cardinality(p_kinds) IS DISTINCT FROM entries
       OR cardinality(p_on_hand_changes) IS DISTINCT FROM entries
       OR cardinality(p_reserved_changes) IS DISTINCT FROM entries THEN
        RAISE EXCEPTION 'move_stock_many: the entry arrays differ in length'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('ids %s, warehouse_ids %s, material_ids %s, kinds %s, '
                                  'on_hand_changes %s, reserved_changes %s',
                                  cardinality(p_ids), cardinality(p_warehouse_ids),
                                  cardinality(p_material_ids), cardinality(p_kinds),
                                  cardinality(p_on_hand_changes), cardinality(p_reserved_changes));
    END IF;
    FOR e IN
        SELECT * FROM unnest(p_ids, p_warehouse_ids, p_material_ids, p_kinds, p_on_hand_changes,
                             p_reserved_changes)
               WITH ORDINALITY AS u(id, warehouse_id, material_id, kind, on_hand_change,
                                    reserved_change, ord)
         ORDER BY u.ord
    LOOP
        RETURN NEXT inventory.move_stock(e.id, e.warehouse_id, e.material_id, e.kind,
            e.on_hand_change, e.reserved_change, p_reason, p_reference_type, p_reference_id,
            p_idempotency_key);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION inventory.move_stock_many(uuid[], uuid[], uuid[], text[], numeric[], numeric[], text, text, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.move_stock_many(uuid[], uuid[], uuid[], text[], numeric[], numeric[], text, text, uuid, uuid) TO inventory_app;
