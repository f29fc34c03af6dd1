-- ListShipments `reference = "SO-2026*"` filters with starts_with(reference, ...): under
-- row-level security only a leakproof operator (starts_with is, LIKE is not) may become an index
-- condition, and a prefix range needs a pattern-ops index unless the database's collation is
-- exactly "C" (shipments_by_reference is in the database's collation). Not partial: show_deleted
-- lists filter too.
CREATE INDEX shipments_by_reference_prefix ON shipment.shipments (tenant_id, reference text_pattern_ops);
