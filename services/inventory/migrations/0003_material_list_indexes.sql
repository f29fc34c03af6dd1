-- Indexes for two ListMaterials queries that sorted or filtered every material of the tenant
-- (found by tools/bench/tests/explain.rs at 10,000 materials):
-- `order_by = "create_time"` (either direction), keyset on (created_at, id);
CREATE INDEX materials_by_time ON inventory.materials (tenant_id, created_at, id);
-- and the SKU prefix filter `sku = "STEEL-*"` (LIKE 'STEEL-%'): an index in the database's
-- collation serves a prefix only when that collation is exactly "C", so the prefix gets a
-- pattern-ops index whatever the database was created with.
CREATE INDEX materials_by_sku_prefix ON inventory.materials (tenant_id, sku text_pattern_ops);
