-- stock_movements_by_time (tenant_id, created_at DESC, id DESC) held the primary key's columns
-- in the primary key's order, reversed: a B-tree is read as well backwards as forwards, so the
-- primary key already serves "newest first" (ListStockMovements without a warehouse and
-- material; tools/bench/tests/explain.rs checks that it is still an index scan). It only cost
-- one more index entry for every ledger row written: four per reservation line and release.
DROP INDEX inventory.stock_movements_by_time;
