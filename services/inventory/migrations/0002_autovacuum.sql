-- Autovacuum for the hot rows of inventory.
--
-- stock_levels: a few thousand rows per tenant, each updated by every receipt, issue,
-- reservation, release and consumption (several times a second for a popular material). The
-- default scale factor (20 % of the table) lets dead versions pile up between vacuums and bloats
-- the index the reservation locks walk. Vacuum after 1 % (at least 50 rows) and analyze after 2 %,
-- and leave 20 % of each page free (fillfactor 80) so updates stay on the page as HOT updates
-- (no index entry written; none of the updated columns is indexed).
ALTER TABLE inventory.stock_levels SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 50,
    autovacuum_analyze_scale_factor = 0.02
);

-- reservations: each line is written when held and again when released or consumed; the held
-- index (partial) is what the deferred reserved == held check reads at every commit.
ALTER TABLE inventory.reservations SET (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
