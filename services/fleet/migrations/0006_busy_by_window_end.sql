-- Which trucks and drivers are busy in a window: the active assignments that overlap it.
--
-- Under row-level security `time_window && $1` (range_overlaps, not leakproof) may not become
-- an index condition, so the availability queries read every active assignment of the tenant,
-- past ones included: 4-6 ms per pick after a few thousand bookings, growing with the history.
-- The window's bounds as plain columns compare with leakproof operators, and a partial index
-- by end lets a pick skip every booking that ended before the window starts: what is left is
-- the bookings still ahead, bounded by how far ahead the tenant books.
ALTER TABLE fleet.assignments
    ADD COLUMN window_start timestamptz GENERATED ALWAYS AS (lower(time_window)) STORED,
    ADD COLUMN window_end   timestamptz GENERATED ALWAYS AS (upper(time_window)) STORED;

CREATE INDEX assignments_active_by_end ON fleet.assignments (tenant_id, window_end)
    INCLUDE (window_start, truck_id, driver_id) WHERE status = 'active';
