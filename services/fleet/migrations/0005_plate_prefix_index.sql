-- ListTrucks `plate = "B-X*"` filters with starts_with(plate_key, ...): under row-level security
-- only a leakproof operator (starts_with is, LIKE is not) may become an index condition, and a
-- prefix range needs a pattern-ops index unless the database's collation is exactly "C"
-- (trucks_by_plate is in the database's collation). Not partial: show_deleted lists filter too.
CREATE INDEX trucks_by_plate_prefix ON fleet.trucks (tenant_id, plate_key text_pattern_ops);
