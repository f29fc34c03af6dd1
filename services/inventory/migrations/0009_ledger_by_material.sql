-- ListStockMovements of one material in every warehouse had no index to start from:
-- stock_movements_by_level leads with the warehouse, so PostgreSQL read every monthly partition
-- sequentially (164 ms for a page of 50 at 500,000 entries of the tenant, and growing with the
-- ledger). This index gives that page in time order, newest first, as the primary key does for
-- the whole ledger and by_level for one level. It costs one more index entry per ledger row.
-- tools/bench/tests/explain.rs asks for that page and fails on the sequential scan.
CREATE INDEX stock_movements_by_material
    ON inventory.stock_movements (tenant_id, material_id, created_at DESC, id DESC);
